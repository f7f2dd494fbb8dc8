from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tabml.core.errors import StageError
from tabml.data.processed import POSITIONS_FILE, read_positions, split_rows

PROJECT = Path(__file__).resolve().parents[3]


def test_evaluate_and_register_read_the_table_preprocess_reads() -> None:
    """They take their raw test rows from `preprocess.input`: DVC must rerun them when it changes."""
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    for stage in ("preprocess", "evaluate", "register"):
        assert "${preprocess.input}" in stages[stage]["deps"], stage
    assert "${preprocess.input}" in [next(iter(o)) if isinstance(o, dict) else o for o in stages["validate"]["outs"]]


def test_the_frozen_test_rows_are_the_split_positions_in_order(tmp_path: Path) -> None:
    table = pd.DataFrame({"a": range(10), "Status": ["good", "bad"] * 5})
    positions = {"train_rows": np.array([0, 2]), "val_rows": np.array([5]), "test_rows": np.array([1, 4, 8])}
    np.savez(tmp_path / POSITIONS_FILE, **positions)
    assert read_positions(tmp_path)["val"].tolist() == [5]
    assert split_rows(tmp_path, table, "test", Path("t.parquet"))["a"].tolist() == [1, 4, 8]
    np.savez(tmp_path / POSITIONS_FILE, **{**positions, "test_rows": np.array([3, 12])})
    with pytest.raises(StageError, match="points at row 12 but the table has 10 rows"):
        split_rows(tmp_path, table, "test", Path("t.parquet"))
    (tmp_path / POSITIONS_FILE).unlink()
    with pytest.raises(StageError, match="preprocess output not found") as info:
        split_rows(tmp_path, table, "test", Path("t.parquet"))
    assert "dvc repro preprocess" in info.value.todo
