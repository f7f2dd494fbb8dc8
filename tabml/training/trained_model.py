"""The trained-model folder (train's output): safetensors weights, the architecture as JSON, the epoch history
and the run info; and how a loaded network's outputs read in the task's terms. No pickle anywhere.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tabml.core.errors import StageError
from tabml.core.files import atomic_path, write_text_atomic

if TYPE_CHECKING:  # torch is imported where a network is built or run: the registry reads file names without it
    import numpy as np
    import torch

    from tabml.data.preprocessing import SplitArrays
    from tabml.training.model import TabularNet

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model_config.json"
HISTORY_FILE = "history.csv"
RUN_INFO_FILE = "run_info.json"
# What differs between two trainings of the same data, params and code: kept beside the folder (git-ignored,
# `*.run.json`), not in it, so the folder's hash in dvc.lock is a function of its inputs (README "A clean
# checkout stays clean"). read_run_info merges it back for the run that wrote it.
PER_RUN_FIELDS = ("wandb_run_id", "seconds", "resumed_from")
RUN_FACTS_SUFFIX = ".run.json"


def run_facts_file(model_dir: Path) -> Path:
    """`models/train` -> `models/train.run.json`: this training's W&B run id, duration and resume point."""
    return model_dir.with_name(model_dir.name + RUN_FACTS_SUFFIX)


def save_model(net: TabularNet, out_dir: Path) -> None:
    """Weights as safetensors, architecture as JSON: no pickle anywhere."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    write_text_atomic(out_dir / CONFIG_FILE, net.config.model_dump_json(indent=2))


def write_history(rows: list[dict[str, float | int]], path: Path) -> None:
    columns = sorted({k for row in rows for k in row}, key=lambda k: (k != "epoch", k))
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def save_trained(out_dir: Path, net: TabularNet, history: list[dict[str, float | int]], info: dict) -> Path:
    """Everything train writes: the network, its epoch history and the run info."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(net, out_dir)
    write_history(history, out_dir / HISTORY_FILE)
    kept = {key: value for key, value in info.items() if key not in PER_RUN_FIELDS}
    facts = {"fingerprint": info.get("fingerprint")} | {key: info.get(key) for key in PER_RUN_FIELDS}
    write_text_atomic(out_dir / RUN_INFO_FILE, json.dumps(kept, indent=2) + "\n")
    write_text_atomic(run_facts_file(out_dir), json.dumps(facts, indent=2) + "\n")
    return out_dir


def load_model(model_dir: Path) -> TabularNet:
    """Rebuild from JSON and load safetensors weights; the network comes back in eval mode."""
    from safetensors.torch import load_file

    from tabml.training.model import TabularNet
    from tabml.training.model_config import ModelConfig

    config = ModelConfig.model_validate(json.loads((model_dir / CONFIG_FILE).read_text()))
    net = TabularNet(config)
    net.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)))
    return net.eval()


def load_trained(model_dir: Path, output_dim: int, arrays: SplitArrays) -> TabularNet:
    """The trained network, checked to fit the processed data it is about to score (a stale model is refused)."""
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (model_dir / name).exists():
            raise StageError("trained model not found", model_dir / name, "run `dvc repro train` first")
    net = load_model(model_dir)
    config = net.config
    found = (config.output_dim, config.n_numeric, len(config.cardinalities))
    expected = (output_dim, arrays.x_num.shape[1], arrays.x_cat.shape[1])
    if found != expected:
        raise StageError(
            "model (outputs={}, numeric={}, categorical={}) does not fit the processed data "
            "(outputs={}, numeric={}, categorical={})".format(*found, *expected),
            model_dir,
            "the model is stale: run `dvc repro train`",
        )
    return net


def model_files(model_dir: Path) -> dict[str, Path]:
    """What a registry package copies from the folder: weights, architecture and training curves."""
    return {name: model_dir / name for name in (WEIGHTS_FILE, CONFIG_FILE, HISTORY_FILE)}


def read_run_info(model_dir: Path) -> dict[str, object]:
    path = model_dir / RUN_INFO_FILE
    if not path.exists():
        raise StageError("not found", path, "run the train stage first: dvc repro train")
    try:
        info = json.loads(path.read_text())
    except ValueError as exc:
        raise StageError(f"not valid JSON: {exc}", path, "run the train stage again: dvc repro train") from None
    info = info if isinstance(info, dict) else {}
    return info | run_facts(model_dir, info.get("fingerprint"))


def run_facts(model_dir: Path, fingerprint: object) -> dict[str, object]:
    """The per-run fields of the training that wrote `model_dir` (`fingerprint`); none for another training's
    (a folder DVC restored from its cache) or when there is no such file (a fresh clone)."""
    try:
        facts = json.loads(run_facts_file(model_dir).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(facts, dict) or facts.get("fingerprint") != fingerprint:
        return {}
    return {key: facts.get(key) for key in PER_RUN_FIELDS}


def recorded_run_id(model_dir: Path) -> str | None:
    """The W&B run id train recorded, if any: later stages add their reports to that run."""
    try:
        run_id = read_run_info(model_dir).get("wandb_run_id")
    except StageError:
        return None
    return run_id if isinstance(run_id, str) and run_id else None


def outputs_to_predictions(logits: torch.Tensor, task: str, target_mean: float, target_std: float) -> np.ndarray:
    """binary: P(positive) (n,); multiclass: class probabilities (n, K); regression: values in target units (n,)."""
    import torch

    logits = logits.float()
    if task == "binary":
        return torch.sigmoid(logits[:, 0]).numpy()
    if task == "multiclass":
        return torch.softmax(logits, dim=1).numpy()
    return (logits[:, 0] * target_std + target_mean).numpy()


def score_arrays(
    net: TabularNet,
    arrays: SplitArrays,
    task: str,
    target_mean: float = 0.0,
    target_std: float = 1.0,
    batch_size: int = 65536,
) -> np.ndarray:
    """Score arrays in large batches on CPU; see `outputs_to_predictions` for the shape."""
    import torch

    net.eval()
    x_num, x_cat = torch.from_numpy(arrays.x_num), torch.from_numpy(arrays.x_cat)
    with torch.inference_mode():
        chunks = [net(x_num[i : i + batch_size], x_cat[i : i + batch_size]) for i in range(0, len(arrays), batch_size)]
        logits = torch.cat(chunks) if chunks else torch.zeros(0, net.config.output_dim)
    return outputs_to_predictions(logits, task, target_mean, target_std)
