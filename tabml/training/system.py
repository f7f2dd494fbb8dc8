"""The LightningModule: loss, metrics and optimiser around a `TabularNet`.

Every epoch-level number is a torchmetrics state (sum and count, or the collected scores), so under DDP it is
reduced over all rows of all ranks, never averaged per rank: ranks may hold different numbers of rows.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torchmetrics
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import nn
from torchmetrics.aggregation import MeanMetric, SumMetric

from tabml.training.datamodule import Batch
from tabml.training.model import TabularNet
from tabml.training.model_config import ModelConfig


def split_metrics(task: str, n_classes: int, prefix: str) -> torchmetrics.MetricCollection:
    """Epoch-level metrics for one split; torchmetrics syncs their states across DDP ranks."""
    from torchmetrics import classification as cls
    from torchmetrics import regression as reg

    metrics: dict[str, torchmetrics.Metric | torchmetrics.MetricCollection]
    if task == "binary":
        metrics = {"auroc": cls.BinaryAUROC(), "accuracy": cls.BinaryAccuracy()}
    elif task == "multiclass":
        metrics = {"accuracy": cls.MulticlassAccuracy(n_classes, average="micro")}
    else:
        metrics = {"rmse": reg.MeanSquaredError(squared=False)}
    return torchmetrics.MetricCollection(metrics, prefix=prefix)


def adamw(parameters: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel where it has one (CPU, CUDA): one kernel per step instead of a dozen
    small ops per parameter, about a third of a small network's step time on CPU."""
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in parameters)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)


class RunningLoss:
    """The epoch's train loss as a device tensor: no host sync and no logging call per step (a plain object, as
    setting attributes on an nn.Module in the hot loop is slow)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self, loss_sum: torch.Tensor | None = None, rows: int = 0) -> None:
        self.loss_sum, self.rows = loss_sum, rows

    def add(self, loss: torch.Tensor, rows: int) -> None:
        weighted = loss.detach() * rows
        self.loss_sum = weighted if self.loss_sum is None else self.loss_sum + weighted
        self.rows += rows


class TabularSystem(L.LightningModule):
    def __init__(
        self,
        net_config: dict[str, object],
        task: str,
        *,
        lr: float,
        weight_decay: float,
        lr_plateau_factor: float,
        lr_plateau_patience: int,
        target_mean: float = 0.0,  # regression: the target's training mean and std (the loss is standardised)
        target_std: float = 1.0,
        class_weights: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = TabularNet(ModelConfig.model_validate(net_config))
        self.task = task
        self.lr, self.weight_decay = lr, weight_decay
        self.lr_plateau_factor, self.lr_plateau_patience = lr_plateau_factor, lr_plateau_patience
        self.target_mean, self.target_std = target_mean, target_std
        weights = torch.tensor(class_weights) if class_weights else None
        self.loss_fn: nn.Module
        if task == "binary":
            pos_weight = weights[1] / weights[0] if weights is not None else None
            self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        elif task == "multiclass":
            self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        else:
            self.loss_fn = nn.MSELoss()
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.val_rows = SumMetric()
        self.val_metrics = split_metrics(task, self.net.config.output_dim, "val/")
        self.last_val_rows = 0  # rows the last validation saw over all ranks (each exactly once)
        self.automatic_optimization = False
        self.running = RunningLoss()

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        if self.training and self.net.config.kind == "tabm":
            return self.net.members(x_num, x_cat)  # (batch, k, out): each member is trained on its own loss
        return self.net(x_num, x_cat)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if logits.ndim == 3:  # tabm members: the mean of their losses
            k = logits.shape[1]
            return self.loss(logits.flatten(0, 1), y.repeat_interleave(k))
        if self.task == "binary":
            return self.loss_fn(logits[:, 0], y.float())
        if self.task == "multiclass":
            return self.loss_fn(logits, y)
        return self.loss_fn(logits[:, 0], (y - self.target_mean) / self.target_std)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """What the metrics compare with the target: probabilities or values in target units."""
        logits = logits.float()
        if self.task == "binary":
            return torch.sigmoid(logits[:, 0])
        if self.task == "multiclass":
            return torch.softmax(logits, dim=1)
        return logits[:, 0] * self.target_std + self.target_mean

    def on_train_epoch_start(self) -> None:
        self.running.reset()

    def training_step(self, steps: list[Batch], batch_idx: int) -> None:
        """Manual optimisation over a short run of mini-batches (`train.steps_per_execution`): one optimiser step
        per mini-batch, the same updates as one mini-batch per call, with Lightning's per-call work paid once.

        Lightning's per-step machinery (hook dispatch, closures) costs about as much as a step of a small tabular
        network, so inside the run torch is called directly, while Lightning keeps what matters: autocast around
        this call, the DDP wrapper (its forward prepares the gradient all-reduce of the backward that follows),
        the optimiser step through `LightningOptimizer` (step count, fp16 loss-scaler step, hooks), and epochs,
        validation and checkpoints around it.
        """
        optimizer = self.optimizers()
        model = self.trainer.strategy.model  # DistributedDataParallel under DDP, this module otherwise
        assert isinstance(optimizer, LightningOptimizer) and model is not None
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # 16-mixed only
        for x_num, x_cat, y in steps:
            loss = self.loss(model(x_num, x_cat), y)
            optimizer.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            optimizer.step()
            self.running.add(loss, y.shape[0])

    def on_validation_epoch_start(self) -> None:
        # Without SyncBatchNorm (CPU ranks) each rank's BatchNorm running statistics follow its own share of the
        # batches; evaluate rank 0's network, the one that is saved, on every rank's share.
        if self.trainer.world_size > 1 and torch.distributed.is_initialized():
            for buffer in self.net.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x_num, x_cat, y = batch
        logits = self(x_num, x_cat)
        self.val_loss.update(self.loss(logits, y), weight=y.shape[0])
        self.val_rows.update(torch.tensor(float(y.shape[0]), device=y.device))
        self.val_metrics.update(self.scores(logits), y)
        # Logging the metric objects: Lightning computes them (all-reduced over ranks) at epoch end and resets them.
        self.log("val_loss", self.val_loss, on_step=False, on_epoch=True)
        self.log_dict(self.val_metrics, on_step=False, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        running = self.running
        if not self.trainer.sanity_checking and running.loss_sum is not None:
            self.train_loss.update(running.loss_sum / running.rows, weight=running.rows)
            self.log("train_loss", self.train_loss, on_step=False, on_epoch=True)
        self.last_val_rows = int(self.val_rows.compute())
        self.val_rows.reset()
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            # Stepped here, before the epoch's checkpoint is saved, so a resumed run has the same schedule.
            scheduler = self.lr_schedulers()
            assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
            scheduler.step(float(self.val_loss.compute()))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A mid-epoch checkpoint carries the epoch's running train loss, so a resumed epoch reports all of it.
        loss_sum = float(self.running.loss_sum) if self.running.loss_sum is not None else 0.0
        checkpoint["tabml_running"] = {"sum": loss_sum, "rows": self.running.rows, "val_rows": self.last_val_rows}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        running = checkpoint.get("tabml_running", {"sum": 0.0, "rows": 0, "val_rows": 0})
        self.last_val_rows = int(running["val_rows"])
        if running["rows"]:
            self.running.reset(torch.tensor(running["sum"], device=self.device), int(running["rows"]))

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        optimizer = adamw(list(self.parameters()), self.lr, self.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.lr_plateau_factor, patience=self.lr_plateau_patience
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
