"""train: processed arrays -> Lightning fit -> safetensors weights, history and run info.

Runs in its own process (dvc.yaml calls `python -m tasks.train`), which is what lets Lightning's DDP launcher,
torchrun and SLURM's srun run this entry point once per rank. Every rank builds the same Trainer; rank 0 alone
tracks (one W&B run) and writes. A killed or preempted run resumes on the next run of the stage (tabml/resume.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabml.core.errors import StageError, TransientError
from tabml.core.params import Params, TrainParams
from tabml.core.stage import stage_main
from tabml.data.preprocessing import PreprocessState
from tabml.data.processed import read_state
from tabml.training.launcher import launch_if_configured

if TYPE_CHECKING:
    import lightning as L

    from tabml.training.system import TabularSystem


def class_weights(state: PreprocessState, y_train: Any, enabled: bool) -> list[float] | None:
    """Inverse-frequency weights (mean 1) when `train.class_weighting` is on."""
    if not enabled or state.task == "regression" or not state.labels:
        return None
    import numpy as np

    counts = np.bincount(y_train, minlength=len(state.labels)).astype(float)
    weights = counts.sum() / np.maximum(counts, 1) / len(counts)
    return [float(w) for w in weights]


def net_config(state: PreprocessState, p: TrainParams) -> dict[str, object]:
    from tabml.data.preprocessing import numeric_columns, numeric_width, robust_bins

    views, tabm = numeric_columns(state), p.model == "tabm"
    # tabm embeds the unclipped robust views; the other networks were designed on robust views clipped at
    # +-input_clip and clamp them themselves when the state did not (new states never do)
    extra: dict[str, object] = {
        "clip_columns": views["robust"] if not tabm and state.clip is None else [],
        "input_clip": p.input_clip,
        "task": state.task,
        "ensemble_size": p.ensemble_size if tabm else 1,
        "ple_columns": views["robust"] if tabm else [],
        "ple_bins": robust_bins(state, p.n_bins) if tabm else [],
        "linear_columns": views["rank"] if tabm else [],
        "wide": tabm,
    }
    return {
        "kind": p.model,
        "n_numeric": numeric_width(state),
        "cardinalities": state.cardinalities,
        "hidden_sizes": p.hidden_sizes,
        "dropout": p.dropout,
        "embedding_dim": p.embedding_dim,
        "category_embedding_max": p.category_embedding_max,
        "periodic_frequencies": p.periodic_frequencies,
        "periodic_sigma": p.periodic_sigma,
        "output_dim": state.output_dim,
        "token_dim": p.token_dim,
        "transformer_blocks": p.transformer_blocks,
        "attention_heads": p.attention_heads,
        **extra,
    }


def build_system(state: PreprocessState, p: TrainParams, y_train: Any) -> TabularSystem:
    from tabml.training.system import TabularSystem

    return TabularSystem(
        net_config(state, p),
        state.task,
        lr=p.lr,
        weight_decay=p.weight_decay,
        lr_plateau_factor=p.lr_plateau_factor,
        lr_plateau_patience=p.lr_plateau_patience,
        target_mean=state.target_mean,
        target_std=state.target_std,
        class_weights=class_weights(state, y_train, p.class_weighting),
    )


def epoch_limit(n_train: int, p: TrainParams) -> int:
    """`max_epochs`, fewer on a large table: about `epoch_budget_rows` training rows in all (1.5M: a 213k-row table
    gets 8 epochs, a 3k-row one `max_epochs`), so training time stops growing with the table's size."""
    if not p.epoch_budget_rows:
        return p.max_epochs
    return max(1, min(p.max_epochs, -(-p.epoch_budget_rows // max(1, n_train))))


def build_callbacks(p: TrainParams, resuming: bool) -> dict[str, L.Callback]:
    """Early stopping, the best checkpoint, curves, and CrashSafety (last.ckpt every epoch end and every N steps)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from tabml.training.history import EpochHistory
    from tabml.training.resume import LAST_CHECKPOINT, CrashSafety

    callbacks: dict[str, L.Callback] = {
        "early_stopping": EarlyStopping("val_loss", patience=p.patience),
        "best": ModelCheckpoint(dirpath=p.checkpoint_dir, filename="best", monitor="val_loss", save_last=False),
        "history": EpochHistory(),
        "crash_safety": CrashSafety(p.checkpoint_dir / LAST_CHECKPOINT, resuming, p.checkpoint_every_n_steps),
    }
    return callbacks


def build_trainer(p: TrainParams, callbacks: list[L.Callback], **overrides: Any) -> L.Trainer:
    import lightning as L

    from tabml.training.distributed import limit_cpu_threads, trainer_arguments

    limit_cpu_threads(p)
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


@dataclass
class Fit:
    """One training run as assembled from params: what `fit` needs and what the outputs record."""

    trainer: L.Trainer
    system: TabularSystem
    data: Any  # TabularDataModule
    callbacks: dict[str, L.Callback]
    plan: Any  # tabml.training.resume.ResumePlan
    fingerprint: str
    batch_size: int
    train_rows: int
    wandb_run: Any = None


def assemble(params: Params) -> Fit:
    """Every rank builds the same Trainer, data module and system; the resume decision is read from files."""
    import lightning as L

    from tabml.tracking.runs import new_run_id
    from tabml.training.datamodule import TabularDataModule, global_batch_size, load_tables
    from tabml.training.resume import fingerprint, plan_resume

    p, processed = params.train, params.preprocess.out_dir
    quiet_lightning()
    L.seed_everything(p.seed, workers=True, verbose=False)
    state = read_state(processed)
    tables = load_tables(processed)
    run_fingerprint = fingerprint(processed, p)
    plan = plan_resume(p.checkpoint_dir, run_fingerprint, p.resume, new_run_id)
    callbacks = build_callbacks(p, plan.resuming)
    trainer = build_trainer(p, list(callbacks.values()), max_epochs=epoch_limit(len(tables["train"]), p))
    batch_size = global_batch_size(len(tables["train"]), p.batch_size, p.min_steps_per_epoch, trainer.world_size)
    data = TabularDataModule(tables, batch_size, p.eval_batch_size, p.seed, p.steps_per_execution)
    system = build_system(state, p, tables["train"].y.numpy())
    return Fit(trainer, system, data, callbacks, plan, run_fingerprint, batch_size, len(tables["train"]))


def start_tracking(fit: Fit, params: Params) -> None:
    """Rank 0: prepare the checkpoint folder and start (or resume) the W&B run, logged to by Lightning."""
    from tabml.tracking.runs import init_run
    from tabml.training.resume import prepare_checkpoint_dir

    p = params.train
    prepare_checkpoint_dir(p.checkpoint_dir, fit.plan, fit.fingerprint)
    print(f"[train] {fit.plan.reason}", flush=True)
    config = {"train": p.model_dump(mode="json"), "task": params.data.task, "dataset": params.data.name}
    # Our own W&B service, not one inherited from a parent process (the flow, pytest): an inherited service
    # keeps a killed train's run open, and the resumed run's id would be refused as "in use".
    os.environ.pop("WANDB_SERVICE", None)
    fit.wandb_run = init_run(params.tracking, fit.plan.run_id, "train", config)
    if fit.wandb_run is not None:
        from lightning.pytorch.loggers import WandbLogger

        fit.trainer.loggers = [WandbLogger(experiment=fit.wandb_run)]


def train(fit: Fit, p: TrainParams) -> None:
    """`trainer.fit`, resuming from the plan's checkpoint; preemption and rank disagreement become one line."""
    from tabml.tracking.runs import finish_run
    from tabml.training.resume import Preempted, ResumeMismatch

    try:
        fit.trainer.fit(fit.system, datamodule=fit.data, ckpt_path=fit.plan.checkpoint, weights_only=True)
    except Preempted as exc:
        if fit.wandb_run is not None:
            with contextlib.suppress(Exception):  # tracking never fails the run
                fit.wandb_run.mark_preempting()
        finish_run(fit.wandb_run)
        raise TransientError(
            str(exc), "train", "run the stage again (`dvc repro`, the flow, a requeue): it resumes"
        ) from exc
    except ResumeMismatch as exc:
        raise StageError(str(exc), p.checkpoint_dir, "put train.checkpoint_dir on a shared filesystem") from exc


def write_outputs(fit: Fit, params: Params, seconds: float) -> dict[str, Any]:
    """Rank 0: the best epoch's weights, the history and the run info into `train.out_dir`."""
    import torch

    from tabml.tracking.runs import finish_run, log_model_artifact
    from tabml.training.distributed import resolve_precision
    from tabml.training.resume import finish_checkpoint_dir
    from tabml.training.trained_model import save_trained

    p, trainer = params.train, fit.trainer
    checkpoint, history = fit.callbacks["best"], fit.callbacks["history"]
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)  # type: ignore[attr-defined]
    fit.system.load_state_dict(best["state_dict"])
    info = {
        "wandb_run_id": fit.plan.run_id if fit.wandb_run is not None else None,
        "seed": p.seed,
        "epochs": trainer.current_epoch,
        "best_val_loss": float(checkpoint.best_model_score or 0),  # type: ignore[attr-defined]
        "train_rows": fit.train_rows,
        "val_rows_evaluated": fit.system.last_val_rows,
        "batch_size": fit.batch_size,
        "world_size": trainer.world_size,
        "device": trainer.strategy.root_device.type,
        "precision": resolve_precision(p.precision, p.accelerator),
        "fingerprint": fit.fingerprint,
        "resumed_from": fit.callbacks["crash_safety"].start if fit.plan.resuming else None,  # type: ignore[attr-defined]
        "seconds": round(seconds, 2),
    }
    save_trained(p.out_dir, fit.system.net.cpu(), history.rows, info)  # type: ignore[attr-defined]
    if fit.wandb_run is not None:
        log_model_artifact(fit.wandb_run, p.out_dir, params.data.name)
    finish_run(fit.wandb_run)
    finish_checkpoint_dir(p.checkpoint_dir)
    return info


def run(params: Params) -> list[Path]:
    start = time.perf_counter()
    fit = assemble(params)
    if fit.trainer.is_global_zero:
        start_tracking(fit, params)
    train(fit, params.train)
    if not fit.trainer.is_global_zero:
        return []
    info = write_outputs(fit, params, time.perf_counter() - start)
    print(
        f"[train] {info['epochs']} epochs in {info['seconds']:.1f}s on {info['world_size']} x {info['device']} "
        f"({info['precision']}), best val_loss={info['best_val_loss']:.4f} -> {params.train.out_dir}"
    )
    return [params.train.out_dir]


def main(argv: Sequence[str] | None = None) -> int:
    launched = launch_if_configured("train", "tasks.train", argv)  # train.launcher: torchrun, srun
    return stage_main("train", run, argv) if launched is None else launched


if __name__ == "__main__":
    sys.exit(main())
