"""Per-epoch training curves, kept in checkpoints (so a resumed run keeps its early epochs) and written by rank 0
as `history.csv` (a DVC plot)."""

from __future__ import annotations

from typing import Any

import lightning as L


class EpochHistory(L.Callback):
    """One row per epoch: train and validation loss, validation metrics, learning rate; one printed line each."""

    def __init__(self, echo: bool = True) -> None:
        self.rows: list[dict[str, float | int]] = []
        self.echo = echo

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Recorded before ModelCheckpoint saves (Lightning runs checkpoint callbacks last), so the epoch's
        # checkpoint already holds its row.
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = {k.replace("/", "_"): float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        row: dict[str, float | int] = {"epoch": trainer.current_epoch, **metrics}
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.rows.append(row)
        if self.echo and trainer.is_global_zero:
            shown = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "lr"))
            print(f"[train] epoch {row['epoch']}: {shown}", flush=True)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict["rows"])
