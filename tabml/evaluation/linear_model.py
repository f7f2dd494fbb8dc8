"""The gate's fallback model: an L2 logistic regression (or ridge) on the network's own inputs (numeric views +
one-hot category codes), fitted on the train split and exported as a `linear` TabularNet, so a registry package
holds it as safetensors and every scorer (batch, online, champion comparison) runs it like any network.
"""

from __future__ import annotations

import warnings

import numpy as np

from tabml.data.preprocessing import SplitArrays
from tabml.evaluation.baselines import design_matrix
from tabml.evaluation.metrics import recorded_threshold
from tabml.training.model import TabularNet
from tabml.training.model_config import ModelConfig
from tabml.training.trained_model import score_arrays

MISSING_CLASS_BIAS = -1.0e4  # a class absent from train: its logit, so its probability is 0 as in the baseline


def linear_config(network: ModelConfig) -> ModelConfig:
    """The network's input sizes and output width, as a `linear` model."""
    return network.model_copy(update={"kind": "linear", "clip_columns": [], "ensemble_size": 1})


def _coefficients(train: SplitArrays, task: str, n_classes: int, l2: float, levels: list[int], std: float):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    x = design_matrix(train, levels)
    if task == "regression":  # the network's output is the standardised target: so is this model's
        ridge = Ridge(alpha=l2).fit(x, train.y.astype(np.float64))
        return ridge.coef_[None, :] / std, np.array([ridge.intercept_]), None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=1.0 / l2, max_iter=2000).fit(x, train.y)
    if task == "binary":
        return model.coef_, model.intercept_, None
    coef = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, MISSING_CLASS_BIAS)
    coef[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
    return coef, bias, model.classes_


def fit_linear_model(
    train: SplitArrays, network: ModelConfig, task: str, n_classes: int, l2: float, mean: float, std: float
) -> TabularNet:
    """Fit on the train split; the weights go into a `linear` TabularNet of the network's input sizes."""
    import torch

    config = linear_config(network)
    coef, bias, _ = _coefficients(train, task, n_classes, l2, list(config.cardinalities), std)
    if task == "regression":
        bias = (bias - mean) / std
    net = TabularNet(config)
    n_num = config.n_numeric
    with torch.no_grad():
        net.linear.weight.copy_(torch.from_numpy(coef[:, :n_num]).float())
        net.linear.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float64)).float())
        start = n_num
        levels: list[torch.nn.Embedding] = list(net.levels)  # type: ignore[arg-type]
        for emb, card in zip(levels, config.cardinalities, strict=True):
            emb.weight.copy_(torch.from_numpy(coef[:, start : start + card].T.copy()).float())
            start += card
    return net.eval()


def val_threshold(net: TabularNet, val: SplitArrays) -> float:
    """Binary: the F1-maximising cut on val, rounded down to 6 digits as evaluate rounds the network's."""
    return recorded_threshold(score_arrays(net, val, "binary"), val.y)
