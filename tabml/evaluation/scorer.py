"""Score raw table rows with a model and its own preprocessing state; find the frozen test rows.

The champion/challenger gate and batch prediction both start from raw rows: a model registered months ago
may have been fitted with other encodings, so its own preprocess_state.json transforms the rows, never
today's arrays.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

from tabml.core.errors import StageError
from tabml.core.params import Params

if TYPE_CHECKING:
    from tabml.data.preprocessing import PreprocessState
    from tabml.training.model import TabularNet

STATE_FILE = "preprocess_state.json"
SPLITS_FILE = "splits.npz"
TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".txt")
PARAM_REF = re.compile(r"^\$\{\s*([\w.]+)\s*\}$")


@dataclass(frozen=True)
class Scorer:
    """A network, the preprocessing state it was trained with, and its binary decision threshold."""

    net: TabularNet
    state: PreprocessState
    threshold: float | None

    def missing_columns(self, frame: pd.DataFrame) -> list[str]:
        return [c.name for c in self.state.input_schema if c.name not in frame.columns]

    def target(self, frame: pd.DataFrame) -> np.ndarray:
        """The target column encoded with this model's own labels (-1: a label it does not know)."""
        from tabml.data.target import TargetEncoding, encode_target

        s = self.state
        encoding = TargetEncoding(task=s.task, column=s.target, labels=s.labels, mean=s.target_mean, std=s.target_std)
        return encode_target(frame[encoding.column], encoding)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive), class probabilities or values in target units (tabml.inference conventions)."""
        from tabml.data.preprocessing import transform
        from tabml.training.trained_model import predict

        s = self.state
        arrays = transform(frame, s, np.zeros(len(frame), dtype=np.float32))
        return predict(self.net, arrays, s.task, s.target_mean, s.target_std)


def load_scorer(model_dir: Path, state_path: Path, metrics_path: Path) -> Scorer:
    """Rebuild a network (safetensors + JSON) with its preprocess state and its metrics.json threshold.

    Raises ValueError (pydantic) or KeyError when a file does not match what this code reads.
    """
    from tabml.data.preprocessing import PreprocessState
    from tabml.training.trained_model import load_model

    state = PreprocessState.model_validate(json.loads(state_path.read_text()))
    threshold = json.loads(metrics_path.read_text()).get("threshold")
    return Scorer(load_model(model_dir), state, None if threshold is None else float(threshold))


def _lookup(params: dict, dotted: str) -> object:
    value: object = params
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def preprocess_input(params: Params | dict, root: Path = Path(".")) -> Path:
    """The table the preprocess stage reads: its `${section.key}` dependency in dvc.yaml that names a table file.

    Read from dvc.yaml rather than assumed, so a pipeline that inserts a stage before preprocess (an
    accepted snapshot, say) is followed without a code change. `params` may be the raw params.yaml mapping
    (an old commit's params need not fit today's schema).
    """
    dvc_yaml = root / "dvc.yaml"
    if not dvc_yaml.is_file():
        raise StageError("dvc.yaml not found", dvc_yaml, "run from the project root (the folder holding dvc.yaml)")
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {})
    deps = (stages.get("preprocess") or {}).get("deps") or []
    raw = params if isinstance(params, dict) else params.model_dump(mode="json", by_alias=True)
    tables = []
    for dep in deps:
        match = PARAM_REF.match(str(dep).strip())
        value = _lookup(raw, match.group(1)) if match else None
        if isinstance(value, str) and value.lower().endswith(TABLE_SUFFIXES):
            tables.append(Path(value))
    if len(tables) != 1:
        raise StageError(
            f"expected one table among the preprocess stage's ${{...}} deps, found {[str(t) for t in tables]}",
            dvc_yaml,
            "make the preprocess stage depend on its input table through a params.yaml path, e.g. ${ingest.snapshot}",
        )
    return root / tables[0]


def read_input_table(params: Params, root: Path = Path(".")) -> tuple[Path, pd.DataFrame]:
    """The table preprocess reads (see preprocess_input), loaded."""
    from tabml.data.tables import read_table

    table = preprocess_input(params, root)
    return table, read_table(table)


def frozen_test_frame(params: Params, root: Path = Path("."), table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The raw rows of the test split, in the order of test.npz: what every model is scored on."""
    splits = root / params.preprocess.out_dir / SPLITS_FILE
    if not splits.is_file():
        raise StageError("split row positions not found", splits, "run the preprocess stage: dvc repro preprocess")
    with np.load(splits, allow_pickle=False) as saved:
        rows = saved["test_rows"]
    path, frame = (preprocess_input(params, root), table) if table is not None else read_input_table(params, root)
    if len(rows) and int(rows.max()) >= len(frame):
        raise StageError(
            f"the test split points at row {int(rows.max())} but the table has {len(frame)} rows",
            path,
            "the processed data is stale: run `dvc repro`",
        )
    return frame.iloc[rows].reset_index(drop=True)
