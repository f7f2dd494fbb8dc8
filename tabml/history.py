"""Per-epoch training curves kept in memory and written by rank 0 as `history.csv` (a DVC plot)."""

from __future__ import annotations

import lightning as L


class EpochHistory(L.Callback):
    """One row per epoch: train and validation loss, validation metrics, learning rate."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float | int]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k.replace("/", "_"): float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        row = {"epoch": trainer.current_epoch, **metrics}
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.rows.append(row)
