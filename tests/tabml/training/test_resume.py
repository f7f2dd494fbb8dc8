import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from tabml.core.params import load_params
from tabml.training.checkpoints import AtomicCheckpointIO
from tabml.training.datamodule import TabularDataModule, TensorTable
from tabml.training.resume import (
    LAST_CHECKPOINT,
    CrashSafety,
    Preempted,
    ResumeMismatch,
    ResumePlan,
    fingerprint,
    plan_resume,
    prepare_checkpoint_dir,
)
from tabml.training.system import TabularSystem
from tests.workspace import EXAMPLE_PARAMS

NET = {"kind": "mlp", "n_numeric": 3, "cardinalities": [4], "hidden_sizes": [8], "dropout": 0.1}
NET |= {"embedding_dim": 2, "output_dim": 1}
OPTIMISER = {"lr": 1e-3, "weight_decay": 1e-4, "lr_plateau_factor": 0.5, "lr_plateau_patience": 3}


@pytest.fixture
def processed(tmp_path: Path) -> Path:
    for name in ("train.npz", "val.npz", "preprocess_state.json"):
        (tmp_path / name).write_bytes(name.encode())
    return tmp_path


def new_id() -> str:
    return "fresh"


def test_the_fingerprint_follows_data_and_what_shapes_training_but_not_where_it_runs(processed: Path) -> None:
    p = load_params(EXAMPLE_PARAMS).train
    base = fingerprint(processed, p)
    moved = p.model_copy(update={"devices": 8, "num_nodes": 4, "strategy": "ddp", "checkpoint_dir": Path("x")})
    assert fingerprint(processed, moved) == base
    assert fingerprint(processed, p.model_copy(update={"lr": 0.01})) != base
    (processed / "train.npz").write_bytes(b"other rows")
    assert fingerprint(processed, p) != base


def test_a_matching_record_with_last_ckpt_resumes_in_the_recorded_wandb_run(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"fingerprint": "abc", "wandb_run_id": "run-1"}))
    torch.save({"state_dict": {}, "epoch": 3}, tmp_path / LAST_CHECKPOINT)
    plan = plan_resume(tmp_path, "abc", True, new_id)
    assert plan.checkpoint == tmp_path / LAST_CHECKPOINT and plan.run_id == "run-1"


def test_an_unreadable_last_ckpt_is_set_aside_with_a_warning_and_training_starts_over(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"fingerprint": "abc", "wandb_run_id": "run-1"}))
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "epoch": 3}, folder / LAST_CHECKPOINT)
    whole = (folder / LAST_CHECKPOINT).read_bytes()
    (folder / LAST_CHECKPOINT).write_bytes(whole[: len(whole) // 2])  # a copy or a disk that gave out halfway

    plan = plan_resume(folder, "abc", True, new_id)
    assert plan.checkpoint is None and plan.run_id == "run-1"  # the same W&B run, its steps start over
    assert plan.reason.startswith("WARNING: ") and "unreadable" in plan.reason and "\n" not in plan.reason
    prepare_checkpoint_dir(folder, plan, "abc")

    aside = list((tmp_path / "checkpoints.unreadable").iterdir())
    assert [p.read_bytes() for p in aside] == [whole[: len(whole) // 2]] and str(aside[0]) in plan.reason
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]


def test_an_atomic_save_that_fails_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / LAST_CHECKPOINT
    AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "epoch": 1}, target)
    before = target.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for an object it cannot pickle
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "bad": lambda: None}, target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [LAST_CHECKPOINT]


@pytest.mark.parametrize(
    ("record", "has_last", "enabled", "run_id", "reason"),
    [
        (None, True, True, "fresh", "no interrupted run"),
        ("{not json", True, True, "fresh", "no interrupted run"),
        ({"fingerprint": "other", "wandb_run_id": "old"}, True, True, "fresh", "other data, params or code"),
        ({"fingerprint": "abc", "wandb_run_id": "old"}, True, False, "fresh", "train.resume is off"),
        ({"fingerprint": "abc", "wandb_run_id": "old"}, False, True, "old", "no checkpoint yet"),
    ],
)
def test_anything_else_starts_fresh(
    tmp_path: Path, record: object, has_last: bool, enabled: bool, run_id: str, reason: str
) -> None:
    if record is not None:
        (tmp_path / "run.json").write_text(record if isinstance(record, str) else json.dumps(record))
    if has_last:
        torch.save({"state_dict": {}}, tmp_path / LAST_CHECKPOINT)
    plan = plan_resume(tmp_path, "abc", enabled, new_id)
    assert plan.checkpoint is None and plan.run_id == run_id and reason in plan.reason


def test_a_fresh_start_clears_old_checkpoints_and_records_the_run(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / LAST_CHECKPOINT).write_bytes(b"old")
    (folder / "best.ckpt").write_bytes(b"old")
    prepare_checkpoint_dir(folder, ResumePlan(None, "run-2", "fresh"), "abc")
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]
    assert json.loads((folder / "run.json").read_text()) == {"fingerprint": "abc", "wandb_run_id": "run-2"}

    (folder / LAST_CHECKPOINT).write_bytes(b"new")
    prepare_checkpoint_dir(folder, ResumePlan(folder / LAST_CHECKPOINT, "run-2", "resume"), "abc")
    assert (folder / LAST_CHECKPOINT).read_bytes() == b"new"


def tiny_fit(tmp_path: Path, callbacks: list[L.Callback], max_epochs: int = 2, **trainer: object) -> L.Trainer:
    generator = torch.Generator().manual_seed(0)
    n = 400
    tables = {
        split: TensorTable(
            torch.randn(n, 3, generator=generator), torch.randint(0, 4, (n, 1)), torch.randint(0, 2, (n,))
        )
        for split in ("train", "val")
    }
    fit = L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        callbacks=callbacks,
        **trainer,  # type: ignore[arg-type]
    )
    fit.fit(
        TabularSystem(NET, "binary", **OPTIMISER), datamodule=TabularDataModule(tables, 20, 1000, 0, steps_per_call=2)
    )
    return fit


class SendSigterm(L.Callback):
    """SIGTERM to this very process at one training step, as a scheduler would send it."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, idx: int) -> None:
        if trainer.current_epoch == 1 and idx == 3:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_stops_at_the_next_step_after_saving_last_ckpt(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    safety = CrashSafety(tmp_path / LAST_CHECKPOINT, resuming=False)
    with pytest.raises(Preempted, match="epoch 1 at step 28"):  # 10 items of 2 steps per epoch: 20 + 4 * 2
        tiny_fit(tmp_path, [safety, SendSigterm()])
    saved = torch.load(tmp_path / LAST_CHECKPOINT, weights_only=True)
    assert saved["global_step"] == 28 and "rng" in saved["callbacks"]["CrashSafety"]
    assert signal.getsignal(signal.SIGTERM) == before  # the process's own handler is back after the fit


def test_last_ckpt_is_also_saved_every_n_steps(tmp_path: Path) -> None:
    saves: list[int] = []

    class Spy(CrashSafety):
        def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
            mtime = (tmp_path / LAST_CHECKPOINT).stat().st_mtime_ns if (tmp_path / LAST_CHECKPOINT).exists() else 0
            super().on_train_batch_end(trainer, *args)  # type: ignore[arg-type]
            if (tmp_path / LAST_CHECKPOINT).exists() and (tmp_path / LAST_CHECKPOINT).stat().st_mtime_ns != mtime:
                saves.append(trainer.global_step)

    tiny_fit(tmp_path, [Spy(tmp_path / LAST_CHECKPOINT, resuming=False, every_n_steps=7)], max_epochs=1)
    assert saves == [8, 14]  # first call past 7 and 14; step 20 is the epoch's end, left to the epoch checkpoint


def test_last_ckpt_is_saved_at_every_epoch_end_even_when_the_best_checkpoint_is_not(tmp_path: Path) -> None:
    """The monitored value gets worse every epoch (`epoch` itself), so best.ckpt is epoch 0's; last.ckpt is not."""
    seen: list[tuple[int, int]] = []

    class ReadLast(L.Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.current_epoch:
                saved = torch.load(tmp_path / LAST_CHECKPOINT, weights_only=True)
                seen.append((saved["epoch"], saved["global_step"]))

    best = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="epoch", mode="min", save_last=False)
    tiny_fit(tmp_path, [ReadLast(), best, CrashSafety(tmp_path / LAST_CHECKPOINT, resuming=False)], max_epochs=3)
    assert seen == [(0, 20), (1, 40)]  # 20 optimiser steps per epoch: each epoch end, not the best one only
    assert torch.load(tmp_path / LAST_CHECKPOINT, weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / "best.ckpt", weights_only=True)["epoch"] == 0


def test_ranks_that_disagree_about_resuming_stop_at_start_up_instead_of_hanging(tmp_path: Path) -> None:
    """Rank 1 of a 2-node job cannot see last.ckpt (checkpoint_dir on node-local disk): a clear error at setup."""
    votes = [True, False]  # this rank resumes, another does not

    def reduce_boolean_decision(decision: bool, **how: bool) -> bool:
        return all(votes) if how["all"] else any(votes)

    strategy = SimpleNamespace(reduce_boolean_decision=reduce_boolean_decision)
    trainer = SimpleNamespace(world_size=2, strategy=strategy)
    with pytest.raises(ResumeMismatch, match="every node shares"):
        CrashSafety(tmp_path / LAST_CHECKPOINT, resuming=True).setup(trainer, None, "fit")  # type: ignore[arg-type]
    votes[1] = True
    CrashSafety(tmp_path / LAST_CHECKPOINT, resuming=True).setup(trainer, None, "fit")  # type: ignore[arg-type]
