"""The gate's fallback linear model: a `linear` network that scores exactly like the fitted sklearn model."""

import numpy as np
import pytest

from tabml.evaluation.baselines import linear
from tabml.evaluation.linear_model import fit_linear_model, val_threshold
from tabml.training.model_config import ModelConfig
from tabml.training.trained_model import score_arrays
from tests.tabml.evaluation.test_baselines import split


def network_config(n_numeric: int, cardinalities: list[int], output_dim: int, task: str) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "kind": "tabm",
            "n_numeric": n_numeric,
            "cardinalities": cardinalities,
            "hidden_sizes": [8],
            "dropout": 0.0,
            "embedding_dim": 4,
            "output_dim": output_dim,
            "task": task,
            "ensemble_size": 4,
        }
    )


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_exported_network_scores_like_the_linear_model_on_the_same_inputs(task: str) -> None:
    rng = np.random.default_rng(1)
    train, val, test = split(rng, 600, task), split(rng, 200, task), split(rng, 300, task)
    n_classes = {"binary": 2, "multiclass": 3, "regression": 0}[task]
    mean, std = (float(train.y.mean()), float(train.y.std())) if task == "regression" else (0.0, 1.0)
    config = network_config(3, [4, 4], {"binary": 1, "multiclass": 3, "regression": 1}[task], task)
    net = fit_linear_model(train, config, task, n_classes, 1.0, mean, std)
    assert net.config.kind == "linear" and net.config.cardinalities == [4, 4]
    ours = score_arrays(net, test, task, mean, std)
    reference = linear(train, val, test, task, n_classes, 1.0)  # sklearn on numerics + one-hot codes
    np.testing.assert_allclose(ours, reference.test_scores, atol=2e-5)
    if task == "binary":
        assert val_threshold(net, val) == pytest.approx(reference.threshold, abs=2e-5)


def test_a_class_absent_from_train_gets_probability_zero() -> None:
    rng = np.random.default_rng(2)
    train, test = split(rng, 400, "multiclass"), split(rng, 50, "multiclass")
    train = type(train)(train.x_num[train.y < 2], train.x_cat[train.y < 2], train.y[train.y < 2])
    net = fit_linear_model(train, network_config(3, [4, 4], 3, "multiclass"), "multiclass", 3, 1.0, 0.0, 1.0)
    proba = score_arrays(net, test, "multiclass")
    assert proba[:, 2].max() < 1e-6 and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
