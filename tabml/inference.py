"""Turn network outputs into predictions in the task's terms."""

from __future__ import annotations

import numpy as np
import torch

from tabml.arrays import SplitArrays
from tabml.model import TabularNet


def outputs_to_predictions(logits: torch.Tensor, task: str, target_mean: float, target_std: float) -> np.ndarray:
    """binary: P(positive) (n,); multiclass: class probabilities (n, K); regression: values in target units (n,)."""
    logits = logits.float()
    if task == "binary":
        return torch.sigmoid(logits[:, 0]).numpy()
    if task == "multiclass":
        return torch.softmax(logits, dim=1).numpy()
    return (logits[:, 0] * target_std + target_mean).numpy()


@torch.inference_mode()
def predict(
    net: TabularNet,
    arrays: SplitArrays,
    task: str,
    target_mean: float = 0.0,
    target_std: float = 1.0,
    batch_size: int = 65536,
) -> np.ndarray:
    """Score arrays in large batches on CPU; see `outputs_to_predictions` for the shape."""
    net.eval()
    x_num = torch.from_numpy(arrays.x_num)
    x_cat = torch.from_numpy(arrays.x_cat)
    chunks = [net(x_num[i : i + batch_size], x_cat[i : i + batch_size]) for i in range(0, len(arrays), batch_size)]
    logits = torch.cat(chunks) if chunks else torch.zeros(0, net.config.output_dim)
    return outputs_to_predictions(logits, task, target_mean, target_std)
