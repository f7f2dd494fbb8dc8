import lightning as L
import pytest
import torch

from tabml.training.datamodule import TabularDataModule, TensorTable
from tabml.training.system import TabularSystem

NET = {"kind": "mlp", "n_numeric": 3, "cardinalities": [4], "hidden_sizes": [8], "dropout": 0.1}
NET |= {"embedding_dim": 2, "output_dim": 1}
OPTIMISER = {"lr": 1e-3, "weight_decay": 1e-4, "lr_plateau_factor": 0.5, "lr_plateau_patience": 3}


def tables(n: int = 300) -> dict[str, TensorTable]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=generator)
    y = (x[:, 0] + 0.5 * torch.randn(n, generator=generator) > 0).long()
    return {
        "train": TensorTable(x, torch.randint(0, 4, (n, 1), generator=generator), y),
        "val": TensorTable(x, torch.zeros(n, 1, dtype=torch.long), y),
    }


def fit(steps_per_call: int, epochs: int = 2) -> tuple[TabularSystem, L.Trainer]:
    L.seed_everything(0, verbose=False)
    system = TabularSystem(NET, "binary", **{**OPTIMISER, "lr": 0.01})
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        deterministic=True,
    )
    trainer.fit(system, datamodule=TabularDataModule(tables(), 16, 64, seed=0, steps_per_call=steps_per_call))
    return system, trainer


def test_several_optimiser_steps_per_call_train_exactly_like_one_per_call() -> None:
    one, one_trainer = fit(steps_per_call=1)
    many, many_trainer = fit(steps_per_call=8)
    assert one_trainer.global_step == many_trainer.global_step == 2 * (300 // 16)  # one step per mini-batch
    for (name, a), (_, b) in zip(one.state_dict().items(), many.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert one_trainer.callback_metrics["train_loss"] == many_trainer.callback_metrics["train_loss"]


def test_epoch_metrics_cover_every_validation_row_and_the_scheduler_is_stepped() -> None:
    system, trainer = fit(steps_per_call=4)
    assert system.last_val_rows == 300
    assert {"train_loss", "val_loss", "val/auroc", "val/accuracy"} <= set(trainer.callback_metrics)
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 2  # type: ignore[attr-defined]
    assert float(trainer.callback_metrics["val/auroc"]) > 0.7


def test_the_running_train_loss_travels_in_checkpoints() -> None:
    system = TabularSystem(NET, "binary", **OPTIMISER)
    system.running.add(torch.tensor(0.5), 10)
    system.last_val_rows = 300
    checkpoint: dict[str, object] = {}
    system.on_save_checkpoint(checkpoint)
    restored = TabularSystem(NET, "binary", **OPTIMISER)
    restored.on_load_checkpoint(checkpoint)
    assert (
        restored.last_val_rows == 300
        and restored.running.rows == 10
        and float(restored.running.loss_sum) == pytest.approx(5.0)
    )  # type: ignore[arg-type]
