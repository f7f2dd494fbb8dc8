"""The processed-splits artifact (preprocess's output folder): one `.npz` per split (no pickle), the raw-row
positions of every split, the fitted preprocessing state (JSON) and the decision report. Every reader and
writer of that folder goes through here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tabml.core.errors import StageError
from tabml.core.files import atomic_path, write_text_atomic
from tabml.data.preprocessing import PreprocessState, SplitArrays

SPLITS = ("train", "val", "test")
STATE_FILE = "preprocess_state.json"
REPORT_FILE = "preprocess_report.json"
POSITIONS_FILE = "splits.npz"  # row positions of each split in the table preprocess read: `<split>_rows`


def split_path(processed_dir: Path, split: str) -> Path:
    return processed_dir / f"{split}.npz"


def save_split(arrays: SplitArrays, path: Path) -> Path:
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, x_num=arrays.x_num, x_cat=arrays.x_cat, y=arrays.y)
    return path


def load_split(path: Path) -> SplitArrays:
    with np.load(path, allow_pickle=False) as data:
        return SplitArrays(x_num=data["x_num"], x_cat=data["x_cat"], y=data["y"])


def save_state(state: PreprocessState, out_dir: Path) -> Path:
    path = out_dir / STATE_FILE
    return write_text_atomic(path, state.model_dump_json(indent=2) + "\n")


def load_state(processed_dir: Path) -> PreprocessState:
    return PreprocessState.model_validate(json.loads((processed_dir / STATE_FILE).read_text()))


def _missing(path: Path) -> StageError:
    return StageError("preprocess output not found", path, "run the preprocess stage first: dvc repro preprocess")


def read_state(processed_dir: Path) -> PreprocessState:
    """The fitted state, or a StageError saying to rerun preprocess."""
    path = processed_dir / STATE_FILE
    if not path.exists():
        raise _missing(path)
    try:
        return load_state(processed_dir)
    except ValueError as exc:  # JSON or schema (pydantic's ValidationError is a ValueError)
        first = str(exc).strip().splitlines()[0]
        raise StageError(f"unreadable preprocess state ({first})", path, "re-run `dvc repro preprocess`") from None


def read_split(processed_dir: Path, split: str) -> SplitArrays:
    path = split_path(processed_dir, split)
    if not path.exists():
        raise _missing(path)
    return load_split(path)


def write_processed(
    out_dir: Path,
    arrays: dict[str, SplitArrays],
    positions: dict[str, np.ndarray],
    state: PreprocessState,
    report: dict[str, object],
) -> Path:
    """Everything preprocess writes: one `.npz` per split, the row positions, the state and the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        save_split(arrays[name], split_path(out_dir, name))
    with atomic_path(out_dir / POSITIONS_FILE) as tmp, tmp.open("wb") as fh:
        np.savez(fh, allow_pickle=False, **{f"{name}_rows": positions[name] for name in SPLITS})
    save_state(state, out_dir)
    write_text_atomic(out_dir / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    return out_dir


def read_positions(processed_dir: Path) -> dict[str, np.ndarray]:
    """Per split, the positions of its rows in the table preprocess read (`preprocess.input`)."""
    path = processed_dir / POSITIONS_FILE
    if not path.is_file():
        raise _missing(path)
    with np.load(path, allow_pickle=False) as saved:
        return {name: saved[f"{name}_rows"] for name in SPLITS}


def split_rows(processed_dir: Path, table: pd.DataFrame, split: str, source: Path) -> pd.DataFrame:
    """The raw rows of one split, in the order of its `.npz`: what every model is scored on (test: frozen)."""
    rows = read_positions(processed_dir)[split]
    if len(rows) and int(rows.max()) >= len(table):
        raise StageError(
            f"the {split} split points at row {int(rows.max())} but the table has {len(table)} rows",
            source,
            "the processed data is stale: run `dvc repro`",
        )
    return table.iloc[rows].reset_index(drop=True)


def fingerprint_files(processed_dir: Path) -> list[Path]:
    """What a training run depends on (tabml.training.resume hashes them)."""
    return [split_path(processed_dir, "train"), split_path(processed_dir, "val"), processed_dir / STATE_FILE]
