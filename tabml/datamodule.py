"""In-memory tabular data for Lightning: whole splits as tensors, batches gathered by index (no per-row Python)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from tabml.arrays import SplitArrays, load_split, split_path

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class TensorTable(Dataset[Batch]):
    """A split held as three tensors; `__getitems__` lets the DataLoader fetch a whole batch in one gather."""

    def __init__(self, arrays: SplitArrays) -> None:
        self.x_num = torch.from_numpy(arrays.x_num)
        self.x_cat = torch.from_numpy(arrays.x_cat)
        self.y = torch.from_numpy(arrays.y)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, index: int) -> Batch:
        return self.x_num[index], self.x_cat[index], self.y[index]

    def __getitems__(self, indices: list[int]) -> Batch:
        rows = torch.as_tensor(indices)
        return self.x_num[rows], self.x_cat[rows], self.y[rows]


def whole_batch(batch: Batch) -> Batch:
    """Collate for `__getitems__`: the batch is already stacked."""
    return batch


def effective_batch_size(n_rows: int, requested: int, min_steps: int, smallest: int = 8) -> int:
    """Shrink the batch on small tables so each epoch still takes `min_steps` optimiser steps."""
    return max(1, min(requested, max(smallest, n_rows // min_steps)))


class TabularDataModule(L.LightningDataModule):
    """Loads the preprocess stage's `.npz` splits once and serves shuffled train and ordered eval batches."""

    def __init__(self, processed_dir: Path, batch_size: int = 256, eval_batch_size: int = 8192) -> None:
        super().__init__()
        self.processed_dir = processed_dir
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.tables: dict[str, TensorTable] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.tables:
                self.tables[split] = TensorTable(load_split(split_path(self.processed_dir, split)))

    def _loader(self, split: str, batch_size: int, shuffle: bool, drop_last: bool = False) -> DataLoader[Batch]:
        table = self.tables[split]
        return DataLoader(table, batch_size=batch_size, shuffle=shuffle, collate_fn=whole_batch, drop_last=drop_last)

    def train_dataloader(self) -> DataLoader[Batch]:
        # A trailing batch of one row breaks BatchNorm; with shuffling no row is left out for good.
        return self._loader(
            "train", self.batch_size, shuffle=True, drop_last=len(self.tables["train"]) > self.batch_size
        )

    def val_dataloader(self) -> DataLoader[Batch]:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader[Batch]:
        return self._loader("test", self.eval_batch_size, shuffle=False)
