"""train: processed arrays -> Lightning fit -> safetensors weights, history and run info.

Runs in its own process (dvc.yaml calls `python -m tasks.train`), which is what lets Lightning's DDP
launcher re-execute this entry point once per rank.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabml.cli import stage_main
from tabml.params import Params, TrainParams
from tabml.preprocessing import PreprocessState, load_state

HISTORY_FILE = "history.csv"
RUN_INFO_FILE = "run_info.json"


def global_rank() -> int:
    """This process's rank before Lightning starts: torchrun sets RANK; Lightning's launcher sets LOCAL_RANK."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    return int(os.environ.get("NODE_RANK", 0)) * 1000 + int(os.environ.get("LOCAL_RANK", 0))


def class_weights(state: PreprocessState, y_train: Any, enabled: bool) -> list[float] | None:
    """Inverse-frequency weights (mean 1) when `train.class_weighting` is on."""
    if not enabled or state.task == "regression" or not state.labels:
        return None
    import numpy as np

    counts = np.bincount(y_train, minlength=len(state.labels)).astype(float)
    weights = counts.sum() / np.maximum(counts, 1) / len(counts)
    return [float(w) for w in weights]


def net_config(state: PreprocessState, p: TrainParams) -> dict[str, object]:
    from tabml.preprocessing import numeric_width

    return {
        "kind": p.model,
        "n_numeric": numeric_width(state),
        "cardinalities": state.cardinalities,
        "hidden_sizes": p.hidden_sizes,
        "dropout": p.dropout,
        "embedding_dim": p.embedding_dim,
        "output_dim": state.output_dim,
    }


def write_history(rows: list[dict[str, float | int]], path: Path) -> None:
    columns = sorted({k for row in rows for k in row}, key=lambda k: (k != "epoch", k))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def run(params: Params) -> list[Path]:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from tabml.datamodule import TabularDataModule, effective_batch_size
    from tabml.history import EpochHistory
    from tabml.model import save_model
    from tabml.system import TabularSystem
    from tabml.tracking import finish_run, init_run, new_run_id

    p, processed = params.train, params.preprocess.out_dir
    start = time.perf_counter()
    L.seed_everything(p.seed, workers=True, verbose=False)
    state = load_state(processed)
    data = TabularDataModule(processed, batch_size=p.batch_size)
    data.setup("fit")
    data.batch_size = effective_batch_size(len(data.tables["train"]), p.batch_size, p.min_steps_per_epoch)
    system = TabularSystem(
        net_config(state, p),
        state.task,
        lr=p.lr,
        weight_decay=p.weight_decay,
        target_mean=state.target_mean,
        target_std=state.target_std,
        class_weights=class_weights(state, data.tables["train"].y.numpy(), p.class_weighting),
        lr_patience=max(1, p.patience // 2),
    )
    is_rank_zero = global_rank() == 0
    run_id = new_run_id()
    wandb_run = None
    if is_rank_zero:
        shutil.rmtree(p.checkpoint_dir, ignore_errors=True)
        config = {"train": p.model_dump(mode="json"), "task": state.task, "dataset": params.data.name}
        wandb_run = init_run(params.tracking, run_id, "train", config)
    logger: Any = False
    if wandb_run is not None:
        from lightning.pytorch.loggers import WandbLogger

        logger = WandbLogger(experiment=wandb_run)
    history = EpochHistory()
    checkpoint = ModelCheckpoint(dirpath=p.checkpoint_dir, filename="best", monitor="val_loss", save_last=True)
    trainer = L.Trainer(
        accelerator=p.accelerator,
        devices=p.devices,
        num_nodes=p.num_nodes,
        strategy=p.strategy,
        precision=p.precision,
        max_epochs=p.max_epochs,
        deterministic=p.deterministic,
        logger=logger,
        callbacks=[EarlyStopping("val_loss", patience=p.patience), checkpoint, history],
        enable_model_summary=False,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
    )
    trainer.fit(system, datamodule=data)
    if not trainer.is_global_zero:
        return []
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    system.load_state_dict(best["state_dict"])
    p.out_dir.mkdir(parents=True, exist_ok=True)
    save_model(system.net.cpu(), p.out_dir)
    write_history(history.rows, p.out_dir / HISTORY_FILE)
    seconds = time.perf_counter() - start
    info = {
        "wandb_run_id": run_id if wandb_run is not None else None,
        "seed": p.seed,
        "epochs": trainer.current_epoch,
        "best_val_loss": float(checkpoint.best_model_score or 0),
        "train_rows": len(data.tables["train"]),
        "batch_size": data.batch_size,
        "world_size": trainer.world_size,
        "seconds": round(seconds, 2),
    }
    (p.out_dir / RUN_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    if wandb_run is not None:
        from tabml.tracking import log_model_artifact

        log_model_artifact(wandb_run, p.out_dir, params.data.name)
    finish_run(wandb_run)
    print(
        f"[train] {info['epochs']} epochs in {seconds:.1f}s, best val_loss={info['best_val_loss']:.4f} -> {p.out_dir}"
    )
    return [p.out_dir]


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("train", run, argv)


if __name__ == "__main__":
    sys.exit(main())
