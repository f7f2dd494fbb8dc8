"""In-memory tabular data for Lightning: whole splits as tensors on the training device, batches sliced by index.

No DataLoader, no per-row `__getitem__`, no DistributedSampler: this module shards the data itself.
- train: one seeded permutation per epoch, the same on every rank; each step's *global* batch is cut into one
  equal piece per rank, so a step of W ranks sees the same rows as a step of one process (`batch_size` is global).
- val/test: each rank takes a contiguous block, in order and without padding, so across ranks every row is
  evaluated exactly once whatever the world size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from tabml.data.preprocessing import SplitArrays
from tabml.data.processed import load_split, split_path

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class TensorTable:
    """A split held as three tensors; a batch is one gather per tensor."""

    def __init__(self, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor) -> None:
        self.x_num, self.x_cat, self.y = x_num, x_cat, y

    @classmethod
    def from_arrays(cls, arrays: SplitArrays) -> TensorTable:
        return cls(torch.from_numpy(arrays.x_num), torch.from_numpy(arrays.x_cat), torch.from_numpy(arrays.y))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device) -> TensorTable:
        return TensorTable(self.x_num.to(device), self.x_cat.to(device), self.y.to(device))

    def take(self, rows: torch.Tensor) -> Batch:
        return self.x_num[rows], self.x_cat[rows], self.y[rows]

    def rows(self, start: int, stop: int) -> Batch:
        return self.x_num[start:stop], self.x_cat[start:stop], self.y[start:stop]


def load_tables(processed_dir: Path, splits: tuple[str, ...] = ("train", "val")) -> dict[str, TensorTable]:
    return {split: TensorTable.from_arrays(load_split(split_path(processed_dir, split))) for split in splits}


def effective_batch_size(n_rows: int, requested: int, min_steps: int, smallest: int = 8) -> int:
    """Shrink the batch on small tables so each epoch still takes `min_steps` optimiser steps."""
    return max(1, min(requested, max(smallest, n_rows // min_steps)))


def global_batch_size(n_rows: int, requested: int, min_steps: int, world_size: int) -> int:
    """The batch per optimiser step over all ranks: a multiple of the world size, so every rank gets as many rows."""
    size = effective_batch_size(n_rows, requested, min_steps)
    return max(world_size, size - size % world_size)


def shard_bounds(n_rows: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous block of `rank`: blocks differ by at most one row and together cover every row once."""
    return n_rows * rank // world_size, n_rows * (rank + 1) // world_size


def epoch_permutation(n_rows: int, seed: int, epoch: int) -> torch.Tensor:
    """The row order of one epoch: a function of (seed, epoch) only, so every rank and every resume agree."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64)
    generator = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
    return torch.randperm(n_rows, generator=generator)


class EpochCounter:
    """Lightning calls `loader.sampler.set_epoch(epoch)` before each epoch (as for a DistributedSampler)."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class TrainBatches:
    """This rank's share of each training step, `steps_per_call` steps per item (one gather), with a position
    Lightning saves in mid-epoch checkpoints."""

    def __init__(
        self, table: TensorTable, global_batch: int, rank: int, world_size: int, seed: int, steps_per_call: int = 1
    ) -> None:
        self.table, self.global_batch, self.seed = table, global_batch, seed
        self.rank, self.world_size, self.steps_per_call = rank, world_size, steps_per_call
        self.sampler = EpochCounter()
        self._position = 0  # items of the current epoch handed out
        self._resume_at: tuple[int, int] | None = None

    @property
    def steps_per_epoch(self) -> int:
        # A trailing partial batch is dropped (a batch of one row breaks BatchNorm); the permutation changes every
        # epoch, so no row is left out for good.
        return max(1, len(self.table) // self.global_batch)

    def __len__(self) -> int:
        return -(-self.steps_per_epoch // self.steps_per_call)

    def __iter__(self) -> Iterator[list[Batch]]:
        # A generator: the epoch is read at the first item, after Lightning has called `set_epoch`.
        epoch = self.sampler.epoch
        start = 0
        if self._resume_at is not None and self._resume_at[0] == epoch:
            start = self._resume_at[1]
        self._resume_at = None
        order = epoch_permutation(len(self.table), self.seed, epoch).to(self.table.y.device)
        steps, size = self.steps_per_epoch, min(self.global_batch, len(self.table))
        for item in range(start, len(self)):
            first, last = item * self.steps_per_call, min((item + 1) * self.steps_per_call, steps)
            shares = [
                torch.tensor_split(order[s * size : (s + 1) * size], self.world_size)[self.rank]
                for s in range(first, last)
            ]
            sizes = [len(share) for share in shares]
            x_num, x_cat, y = self.table.take(torch.cat(shares))
            self._position = item + 1
            yield list(zip(x_num.split(sizes), x_cat.split(sizes), y.split(sizes), strict=True))

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "position": self._position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = (int(state["epoch"]), int(state["position"]))


class EvalBatches:
    """This rank's contiguous block of a split, in order, in batches of `batch_size`; nothing padded or repeated."""

    def __init__(self, table: TensorTable, batch_size: int, rank: int, world_size: int) -> None:
        start, stop = shard_bounds(len(table), rank, world_size)
        self.shard = TensorTable(*table.rows(start, stop))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.shard) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        for start in range(0, len(self.shard), self.batch_size):
            yield self.shard.rows(start, start + self.batch_size)


class TabularDataModule(L.LightningDataModule):
    """Serves in-memory tables to the Trainer; moves them to the training device and shards them by rank."""

    def __init__(
        self,
        tables: dict[str, TensorTable],
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        steps_per_call: int = 1,
    ) -> None:
        super().__init__()
        self.tables = tables
        self.batch_size = batch_size  # global: rows per optimiser step over all ranks
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.steps_per_call = steps_per_call
        self.rank, self.world_size = 0, 1

    def setup(self, stage: str | None = None) -> None:
        trainer: Any = self.trainer
        if trainer is not None:
            self.rank, self.world_size = trainer.global_rank, trainer.world_size
            device = trainer.strategy.root_device
            self.tables = {name: table.to(device) for name, table in self.tables.items()}

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # the tensors already live on the training device: skip Lightning's walk over the batch

    def train_dataloader(self) -> TrainBatches:
        return TrainBatches(
            self.tables["train"], self.batch_size, self.rank, self.world_size, self.seed, self.steps_per_call
        )

    def val_dataloader(self) -> EvalBatches:
        return EvalBatches(self.tables["val"], self.eval_batch_size, self.rank, self.world_size)

    def test_dataloader(self) -> EvalBatches:
        return EvalBatches(self.tables["test"], self.eval_batch_size, self.rank, self.world_size)
