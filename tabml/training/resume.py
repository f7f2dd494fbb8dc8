"""Crash-safe training: whether `checkpoint_dir/last.ckpt` belongs to this run, and saving it on preemption.

`checkpoint_dir/run.json` records the run fingerprint (a hash of the processed data, the train params that shape
the result and the training code) and the W&B run id. A rerun of the stage with the same fingerprint (a Prefect
retry, `dvc repro`, a requeued SLURM job, a restarted pod) resumes from `last.ckpt` and continues the same W&B
run; a different fingerprint starts over. A finished run removes the folder, so the next run starts fresh.
`last.ckpt` is saved at every epoch end (whatever val_loss did) and every N steps when set, atomically
(tabml/training/checkpoints.py); one that cannot be read is set aside with a warning and training starts over.

Every rank makes the same decision from files alone, and only rank 0 writes: rank 0 deletes old checkpoints
before it writes the new `run.json`, so a rank reading the folder meanwhile also decides to start fresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from tabml.core.files import read_json_object
from tabml.core.params import TrainParams
from tabml.data.processed import fingerprint_files
from tabml.training.checkpoints import clear_temps, set_aside, set_aside_path, unreadable_reason

RUN_RECORD = "run.json"
LAST_CHECKPOINT = "last.ckpt"
CODE_FILES = ("model.py", "system.py", "datamodule.py")
# Where and how often a run is checkpointed or placed does not change what it trains (batch_size is global, so
# a run may resume on another number of devices or nodes).
PLACEMENT_PARAMS = frozenset(
    {"out_dir", "checkpoint_dir", "checkpoint_every_n_steps", "resume", "accelerator", "devices", "num_nodes"}
    | {"strategy", "ddp_timeout_seconds", "cpu_threads", "launcher"}
)


def fingerprint(processed_dir: Path, p: TrainParams) -> str:
    """sha256 over the processed data, the train params that shape the result, and the training code."""
    digest = hashlib.sha256()
    for path in fingerprint_files(processed_dir):
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    shaping = {k: v for k, v in p.model_dump(mode="json").items() if k not in PLACEMENT_PARAMS}
    digest.update(json.dumps(shaping, sort_keys=True).encode())
    code_dir = Path(__file__).parent
    for name in CODE_FILES:
        digest.update((code_dir / name).read_bytes())
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class ResumePlan:
    checkpoint: Path | None  # last.ckpt to resume from, or None to start fresh
    run_id: str  # the W&B run this training logs to
    reason: str  # one line for the log
    set_aside: tuple[Path, Path] | None = None  # an unreadable last.ckpt and where rank 0 moves it

    @property
    def resuming(self) -> bool:
        return self.checkpoint is not None


def read_record(checkpoint_dir: Path) -> dict[str, Any] | None:
    return read_json_object(checkpoint_dir / RUN_RECORD)


def plan_resume(checkpoint_dir: Path, run_fingerprint: str, enabled: bool, new_run_id: Callable[[], str]) -> ResumePlan:
    """Read-only: resume when the folder's record has this fingerprint and `last.ckpt` exists."""
    record = read_record(checkpoint_dir)
    if not enabled:
        return ResumePlan(None, new_run_id(), "train.resume is off: starting fresh")
    if record is None:
        return ResumePlan(None, new_run_id(), "no interrupted run: starting fresh")
    if record.get("fingerprint") != run_fingerprint:
        return ResumePlan(None, new_run_id(), "the interrupted run had other data, params or code: starting fresh")
    run_id = str(record.get("wandb_run_id") or new_run_id())
    last = checkpoint_dir / LAST_CHECKPOINT
    if last.exists():
        unreadable = unreadable_reason(last)
        if unreadable is None:
            return ResumePlan(last, run_id, f"resuming the interrupted run from {last}")
        dest = set_aside_path(last)
        reason = f"WARNING: {last} is unreadable ({unreadable}); set aside as {dest}, starting over in the same W&B run"
        return ResumePlan(None, run_id, reason, set_aside=(last, dest))
    return ResumePlan(None, run_id, "the interrupted run saved no checkpoint yet: starting over in the same W&B run")


def prepare_checkpoint_dir(checkpoint_dir: Path, plan: ResumePlan, run_fingerprint: str) -> None:
    """Rank 0 only. Fresh start: delete old checkpoints first, then write the record (the order keeps the other
    ranks' read-only decision consistent). Resume: leave everything as it is."""
    if plan.resuming:
        clear_temps(checkpoint_dir)  # a save that was killed before its rename
        return
    if plan.set_aside is not None:
        set_aside(*plan.set_aside)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    record = {"fingerprint": run_fingerprint, "wandb_run_id": plan.run_id}
    tmp = checkpoint_dir / f".{RUN_RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, checkpoint_dir / RUN_RECORD)


def finish_checkpoint_dir(checkpoint_dir: Path) -> None:
    """Rank 0, after the outputs are written: nothing left to resume."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


class Preempted(Exception):
    """Training stopped on SIGTERM after saving `last.ckpt`."""

    def __init__(self, checkpoint: Path, epoch: int, step: int) -> None:
        self.checkpoint, self.epoch, self.step = checkpoint, epoch, step
        super().__init__(f"preempted (SIGTERM) in epoch {epoch} at step {step}; saved {checkpoint}")


class ResumeMismatch(RuntimeError):
    """Ranks disagree about resuming: checkpoint_dir is not shared by every node."""


class CrashSafety(Checkpoint):
    """What lets a fit be killed and continued. One callback, because Lightning pays per callback per step.

    A `Checkpoint` subclass, so Lightning runs it after ModelCheckpoint: at epoch end the checkpoint is written
    before this callback may stop the fit.

    - Under DDP, every rank must make the same resume decision: fail at once (instead of hanging later) when a
      node cannot see `last.ckpt`, i.e. checkpoint_dir is not on storage that every node shares.
    - The torch RNG (dropout masks) is part of every checkpoint and restored on resume, so a resumed run continues
      exactly as the interrupted one would have.
    - Optionally `last.ckpt` every N optimiser steps as well as at each epoch end (the step count moves by
      `steps_per_execution` per call, so the save comes at the first call that crosses a multiple of N).
    - SIGTERM (pod eviction, `scancel`, spot reclaim): the current step finishes, the ranks agree, `last.ckpt` is
      saved at that step and the fit ends with `Preempted`. This replaces Lightning's SIGTERM handler for the fit:
      it broadcasts from inside the signal handler and lets each rank stop on its own, which can leave DDP ranks
      in different collectives. Here the handler only sets a flag; ranks OR their flags after every step (one
      tiny all-reduce, none with one process) and all stop at the same step, saving with a normal collective save.
    """

    def __init__(self, last_checkpoint: Path, resuming: bool, every_n_steps: int = 0) -> None:
        self.last_checkpoint = last_checkpoint
        self.resuming = resuming
        self.every_n_steps = every_n_steps  # also save last.ckpt each time the step count crosses a multiple of N
        self._saved_at_step = 0
        self._stop_after_epoch = False
        self.sigterm = False
        self.start: dict[str, int] | None = None  # epoch and optimiser step this fit started at
        self._rng: dict[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size == 1:
            return
        every = trainer.strategy.reduce_boolean_decision(self.resuming, all=True)
        some = trainer.strategy.reduce_boolean_decision(self.resuming, all=False)
        if every != some:
            raise ResumeMismatch(
                "some ranks found the interrupted run's last.ckpt and others did not: train.checkpoint_dir must be "
                "on storage that every node shares (or set train.resume: false)"
            )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        signal.signal(signal.SIGTERM, self._on_sigterm)  # Lightning restores the previous handler after fit
        if self._rng is not None:
            torch.set_rng_state(self._rng["cpu"].cpu())
            if "cuda" in self._rng and torch.cuda.is_available():
                torch.cuda.set_rng_state(self._rng["cuda"].cpu())
            self._rng = None
        self.start = {"epoch": trainer.current_epoch, "global_step": trainer.global_step}
        self._saved_at_step = trainer.global_step
        if trainer.global_step and trainer.is_global_zero:
            print(f"[train] resumed at epoch {trainer.current_epoch}, step {trainer.global_step}", flush=True)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self.sigterm = True

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stop = self._agree(trainer, self.sigterm)
        if batch_idx + 1 == trainer.num_training_batches:
            # The epoch's last step: its validation and end-of-epoch checkpoint come next, and a checkpoint saved
            # here would resume past them. Stop after them instead (on_train_epoch_end).
            self._stop_after_epoch = stop
            return
        step, n = trainer.global_step, self.every_n_steps
        if stop or (n and step // n > self._saved_at_step // n):
            trainer.save_checkpoint(self.last_checkpoint, weights_only=False)
            self._saved_at_step = step
        if stop:
            raise Preempted(self.last_checkpoint, trainer.current_epoch, step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After EarlyStopping and ModelCheckpoint (monitoring callbacks, Checkpoints last), so the saved state has
        # this epoch's best score and patience count. Saved whether or not val_loss improved: ModelCheckpoint's
        # save_last writes only when it saves a best checkpoint, and a resume would lose the epochs since.
        trainer.save_checkpoint(self.last_checkpoint, weights_only=False)
        self._saved_at_step = trainer.global_step
        # SIGTERM during the last step or the validation: the end-of-epoch last.ckpt is saved (above).
        # When this was the last epoch anyway, finishing is quicker than stopping.
        stop = self._agree(trainer, self.sigterm) or self._stop_after_epoch
        finishing = trainer.should_stop or trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
        if stop and not finishing:
            raise Preempted(self.last_checkpoint, trainer.current_epoch, trainer.global_step)

    @staticmethod
    def _agree(trainer: L.Trainer, flag: bool) -> bool:
        """True on every rank when any rank got SIGTERM (one tiny all-reduce; none with one process)."""
        return trainer.strategy.reduce_boolean_decision(flag, all=False) if trainer.world_size > 1 else flag

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state()
        return {"rng": state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rng = state_dict["rng"]
