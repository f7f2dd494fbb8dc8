"""The arrays a split is stored as between preprocess, train and evaluate (`.npz`, no pickle)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitArrays:
    """Model inputs of one split: standardised numerics, category codes (0 = missing/other), target."""

    x_num: np.ndarray  # float32 (n, n_numeric)
    x_cat: np.ndarray  # int64 (n, n_categorical)
    y: np.ndarray  # int64 class index, or float32 target in the file's units (regression)

    def __len__(self) -> int:
        return int(self.y.shape[0])


def save_split(arrays: SplitArrays, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.savez(fh, x_num=arrays.x_num, x_cat=arrays.x_cat, y=arrays.y)
    return path


def load_split(path: Path) -> SplitArrays:
    with np.load(path, allow_pickle=False) as data:
        return SplitArrays(x_num=data["x_num"], x_cat=data["x_cat"], y=data["y"])


def split_path(processed_dir: Path, split: str) -> Path:
    return processed_dir / f"{split}.npz"
