"""The trained-model folder (train's output): safetensors weights, the architecture as JSON, the epoch history
and the run info; and how a loaded network's outputs read in the task's terms. No pickle anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tabml.data.processed import SplitArrays
from tabml.training.model import ModelConfig, TabularNet

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model_config.json"
HISTORY_FILE = "history.csv"
RUN_INFO_FILE = "run_info.json"


def save_model(net: TabularNet, out_dir: Path) -> None:
    """Weights as safetensors, architecture as JSON: no pickle anywhere."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_FILE))
    (out_dir / CONFIG_FILE).write_text(net.config.model_dump_json(indent=2))


def load_model(model_dir: Path) -> TabularNet:
    """Rebuild from JSON and load safetensors weights; the network comes back in eval mode."""
    config = ModelConfig.model_validate(json.loads((model_dir / CONFIG_FILE).read_text()))
    net = TabularNet(config)
    net.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)))
    return net.eval()


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
