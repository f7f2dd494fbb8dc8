"""The LightningModule: loss, metrics and optimiser around a `TabularNet`."""

from __future__ import annotations

import lightning as L
import torch
import torchmetrics
from torch import nn

from tabml.datamodule import Batch
from tabml.model import ModelConfig, TabularNet


def split_metrics(task: str, n_classes: int, prefix: str) -> torchmetrics.MetricCollection:
    """Epoch-level metrics for one split; torchmetrics syncs their states across DDP ranks."""
    from torchmetrics import classification as cls
    from torchmetrics import regression as reg

    metrics: dict[str, torchmetrics.Metric]
    if task == "binary":
        metrics = {"auroc": cls.BinaryAUROC(), "accuracy": cls.BinaryAccuracy()}
    elif task == "multiclass":
        metrics = {"accuracy": cls.MulticlassAccuracy(n_classes, average="micro")}
    else:
        metrics = {"rmse": reg.MeanSquaredError(squared=False)}
    return torchmetrics.MetricCollection(metrics, prefix=prefix)


class TabularSystem(L.LightningModule):
    def __init__(
        self,
        net_config: dict[str, object],
        task: str,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        class_weights: list[float] | None = None,
        lr_patience: int = 3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = TabularNet(ModelConfig.model_validate(net_config))
        self.task = task
        weights = torch.tensor(class_weights) if class_weights else None
        self.loss_fn: nn.Module
        if task == "binary":
            pos_weight = weights[1] / weights[0] if weights is not None else None
            self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        elif task == "multiclass":
            self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        else:
            self.loss_fn = nn.MSELoss()
        n_classes = self.net.config.output_dim
        self.val_metrics = split_metrics(task, n_classes, "val/")

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.net(x_num, x_cat)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "binary":
            return self.loss_fn(logits[:, 0], y.float())
        if self.task == "multiclass":
            return self.loss_fn(logits, y)
        return self.loss_fn(logits[:, 0], (y - self.hparams.target_mean) / self.hparams.target_std)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """What the metrics compare with the target: probabilities or values in target units."""
        logits = logits.float()
        if self.task == "binary":
            return torch.sigmoid(logits[:, 0])
        if self.task == "multiclass":
            return torch.softmax(logits, dim=1)
        return logits[:, 0] * self.hparams.target_std + self.hparams.target_mean

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x_num, x_cat, y = batch
        loss = self.loss(self(x_num, x_cat), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=y.shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x_num, x_cat, y = batch
        logits = self(x_num, x_cat)
        self.log("val_loss", self.loss(logits, y), on_epoch=True, batch_size=y.shape[0], sync_dist=True)
        self.val_metrics.update(self.scores(logits), y)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()

    def configure_optimizers(self) -> dict[str, object]:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=self.hparams.lr_patience
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
