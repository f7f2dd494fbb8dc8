"""The processed-splits artifact (preprocess's output folder): one `.npz` per split (no pickle), the raw-row
positions of every split, the fitted preprocessing state (JSON) and the decision report. Every reader and
writer of that folder goes through here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tabml.data.preprocessing import PreprocessState, SplitArrays

SPLITS = ("train", "val", "test")
STATE_FILE = "preprocess_state.json"
REPORT_FILE = "preprocess_report.json"
POSITIONS_FILE = "splits.npz"  # row positions of each split in the table preprocess read: `<split>_rows`


def split_path(processed_dir: Path, split: str) -> Path:
    return processed_dir / f"{split}.npz"


def save_split(arrays: SplitArrays, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.savez(fh, x_num=arrays.x_num, x_cat=arrays.x_cat, y=arrays.y)
    return path


def load_split(path: Path) -> SplitArrays:
    with np.load(path, allow_pickle=False) as data:
        return SplitArrays(x_num=data["x_num"], x_cat=data["x_cat"], y=data["y"])


def save_state(state: PreprocessState, out_dir: Path) -> Path:
    path = out_dir / STATE_FILE
    path.write_text(state.model_dump_json(indent=2) + "\n")
    return path


def load_state(processed_dir: Path) -> PreprocessState:
    return PreprocessState.model_validate(json.loads((processed_dir / STATE_FILE).read_text()))
