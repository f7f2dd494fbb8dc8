"""train: processed arrays -> Lightning fit -> safetensors weights, history and run info.

Runs in its own process (dvc.yaml calls `python -m tasks.train`), which is what lets Lightning's DDP launcher,
torchrun and SLURM's srun run this entry point once per rank. Every rank builds the same Trainer; rank 0 alone
tracks (one W&B run) and writes. A killed or preempted run resumes on the next run of the stage (tabml/resume.py).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabml.core.errors import StageError
from tabml.core.params import Params, TrainParams
from tabml.core.stage import stage_main
from tabml.data.preprocessing import PreprocessState
from tabml.data.processed import load_state

if TYPE_CHECKING:
    import lightning as L

    from tabml.training.system import TabularSystem

HISTORY_FILE = "history.csv"
RUN_INFO_FILE = "run_info.json"


def class_weights(state: PreprocessState, y_train: Any, enabled: bool) -> list[float] | None:
    """Inverse-frequency weights (mean 1) when `train.class_weighting` is on."""
    if not enabled or state.task == "regression" or not state.labels:
        return None
    import numpy as np

    counts = np.bincount(y_train, minlength=len(state.labels)).astype(float)
    weights = counts.sum() / np.maximum(counts, 1) / len(counts)
    return [float(w) for w in weights]


def net_config(state: PreprocessState, p: TrainParams) -> dict[str, object]:
    from tabml.data.preprocessing import numeric_width

    return {
        "kind": p.model,
        "n_numeric": numeric_width(state),
        "cardinalities": state.cardinalities,
        "hidden_sizes": p.hidden_sizes,
        "dropout": p.dropout,
        "embedding_dim": p.embedding_dim,
        "output_dim": state.output_dim,
        "token_dim": p.token_dim,
        "transformer_blocks": p.transformer_blocks,
        "attention_heads": p.attention_heads,
    }


def build_system(state: PreprocessState, p: TrainParams, y_train: Any) -> TabularSystem:
    from tabml.training.system import TabularSystem

    return TabularSystem(
        net_config(state, p),
        state.task,
        lr=p.lr,
        weight_decay=p.weight_decay,
        target_mean=state.target_mean,
        target_std=state.target_std,
        class_weights=class_weights(state, y_train, p.class_weighting),
        lr_patience=max(1, p.patience // 2),
    )


def build_callbacks(p: TrainParams, resuming: bool) -> dict[str, L.Callback]:
    """Early stopping, best + last checkpoints (every epoch, optionally every N steps), curves, resume support."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from tabml.training.history import EpochHistory
    from tabml.training.resume import LAST_CHECKPOINT, CrashSafety

    callbacks: dict[str, L.Callback] = {
        "early_stopping": EarlyStopping("val_loss", patience=p.patience),
        "best": ModelCheckpoint(dirpath=p.checkpoint_dir, filename="best", monitor="val_loss", save_last=True),
        "history": EpochHistory(),
        "crash_safety": CrashSafety(p.checkpoint_dir / LAST_CHECKPOINT, resuming, p.checkpoint_every_n_steps),
    }
    return callbacks


def build_trainer(p: TrainParams, callbacks: list[L.Callback], **overrides: Any) -> L.Trainer:
    import lightning as L

    from tabml.training.distributed import trainer_arguments

    arguments: dict[str, Any] = {
        **trainer_arguments(p),
        "max_epochs": p.max_epochs,
        "deterministic": p.deterministic,
        "logger": False,  # rank 0 attaches the W&B logger once it knows it is rank 0
        "callbacks": callbacks,
        "enable_model_summary": False,
        "enable_progress_bar": False,  # one line per epoch instead (EpochHistory)
        "num_sanity_val_steps": 0,
        "default_root_dir": p.checkpoint_dir,
        **overrides,
    }
    if p.deterministic:
        import torch

        # Deterministic kernels, without torch's NaN-filling of every new tensor (a debugging aid for reads of
        # uninitialised memory) that costs a small tabular network ~25% of its CPU step time. Every rank runs
        # this: the stage re-executes itself per rank (no spawn launcher).
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    return L.Trainer(**arguments)


def quiet_lightning() -> None:
    """Keep the stage log to our lines: Lightning's banner and the warnings this setup triggers on purpose."""
    import logging
    import warnings

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    for message in (
        r"Checkpoint directory .* exists and is not empty",  # run.json lives beside the checkpoints
        r"The number of training batches .* is smaller than the logging interval",  # nothing is logged per step
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # inside Lightning 2.6 with torch 2.13
    ):
        warnings.filterwarnings("ignore", message=message)


def write_history(rows: list[dict[str, float | int]], path: Path) -> None:
    columns = sorted({k for row in rows for k in row}, key=lambda k: (k != "epoch", k))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def run(params: Params) -> list[Path]:
    import lightning as L
    import torch

    from tabml.tracking.runs import finish_run, init_run, new_run_id
    from tabml.training.datamodule import TabularDataModule, global_batch_size, load_tables
    from tabml.training.distributed import resolve_precision
    from tabml.training.resume import (
        Preempted,
        ResumeMismatch,
        fingerprint,
        finish_checkpoint_dir,
        plan_resume,
        prepare_checkpoint_dir,
    )
    from tabml.training.trained_model import save_model

    p, processed = params.train, params.preprocess.out_dir
    start = time.perf_counter()
    quiet_lightning()
    L.seed_everything(p.seed, workers=True, verbose=False)
    state = load_state(processed)
    tables = load_tables(processed)
    run_fingerprint = fingerprint(processed, p)
    plan = plan_resume(p.checkpoint_dir, run_fingerprint, p.resume, new_run_id)
    callbacks = build_callbacks(p, plan.resuming)
    trainer = build_trainer(p, list(callbacks.values()))
    batch_size = global_batch_size(len(tables["train"]), p.batch_size, p.min_steps_per_epoch, trainer.world_size)
    data = TabularDataModule(tables, batch_size, p.eval_batch_size, p.seed, p.steps_per_execution)
    system = build_system(state, p, tables["train"].y.numpy())

    wandb_run = None
    if trainer.is_global_zero:
        prepare_checkpoint_dir(p.checkpoint_dir, plan, run_fingerprint)
        print(f"[train] {plan.reason}", flush=True)
        config = {"train": p.model_dump(mode="json"), "task": state.task, "dataset": params.data.name}
        # Our own W&B service, not one inherited from a parent process (the flow, pytest): an inherited service
        # keeps a killed train's run open, and the resumed run's id would be refused as "in use".
        os.environ.pop("WANDB_SERVICE", None)
        wandb_run = init_run(params.tracking, plan.run_id, "train", config)
        if wandb_run is not None:
            from lightning.pytorch.loggers import WandbLogger

            trainer.loggers = [WandbLogger(experiment=wandb_run)]
    try:
        trainer.fit(system, datamodule=data, ckpt_path=plan.checkpoint, weights_only=True)
    except Preempted as exc:
        if wandb_run is not None:
            with contextlib.suppress(Exception):  # tracking never fails the run
                wandb_run.mark_preempting()
        finish_run(wandb_run)
        raise StageError(
            str(exc), "train", "run the stage again (`dvc repro`, the flow, a requeue): it resumes"
        ) from exc
    except ResumeMismatch as exc:
        raise StageError(str(exc), p.checkpoint_dir, "put train.checkpoint_dir on a shared filesystem") from exc
    if not trainer.is_global_zero:
        return []

    checkpoint, history = callbacks["best"], callbacks["history"]
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)  # type: ignore[attr-defined]
    system.load_state_dict(best["state_dict"])
    p.out_dir.mkdir(parents=True, exist_ok=True)
    save_model(system.net.cpu(), p.out_dir)
    write_history(history.rows, p.out_dir / HISTORY_FILE)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    info = {
        "wandb_run_id": plan.run_id if wandb_run is not None else None,
        "seed": p.seed,
        "epochs": trainer.current_epoch,
        "best_val_loss": float(checkpoint.best_model_score or 0),  # type: ignore[attr-defined]
        "train_rows": len(tables["train"]),
        "val_rows_evaluated": system.last_val_rows,
        "batch_size": batch_size,
        "world_size": trainer.world_size,
        "device": trainer.strategy.root_device.type,
        "precision": resolve_precision(p.precision, p.accelerator),
        "fingerprint": run_fingerprint,
        "resumed_from": callbacks["crash_safety"].start if plan.resuming else None,  # type: ignore[attr-defined]
        "seconds": round(seconds, 2),
    }
    (p.out_dir / RUN_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    if wandb_run is not None:
        from tabml.tracking.runs import log_model_artifact

        log_model_artifact(wandb_run, p.out_dir, params.data.name)
    finish_run(wandb_run)
    finish_checkpoint_dir(p.checkpoint_dir)
    print(
        f"[train] {info['epochs']} epochs in {seconds:.1f}s on {trainer.world_size} x {info['device']} "
        f"({info['precision']}), best val_loss={info['best_val_loss']:.4f} -> {p.out_dir}"
    )
    return [p.out_dir]


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("train", run, argv)


if __name__ == "__main__":
    sys.exit(main())
