import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tabml.core.errors import StageError
from tabml.core.params import load_params
from tabml.evaluation.scorer import frozen_test_frame, preprocess_input

PROJECT = Path(__file__).resolve().parents[3]


def project(tmp_path: Path, preprocess_deps: list[str]) -> Path:
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {"preprocess": {"cmd": "x", "deps": preprocess_deps}}})
    )
    (tmp_path / "params.yaml").write_text((PROJECT / "params.yaml").read_text())
    return tmp_path


def test_the_table_is_whatever_preprocess_depends_on_through_params(tmp_path: Path) -> None:
    params = load_params(PROJECT / "params.yaml")
    root = project(tmp_path, ["${ingest.snapshot}", "${validate.report}", "tasks/preprocess.py"])
    assert preprocess_input(params, root) == root / params.ingest.snapshot
    root = project(tmp_path, ["${validate.accepted_snapshot}", "tasks/preprocess.py"])
    assert preprocess_input(params, root) == root / params.validate_.accepted_snapshot


def test_no_table_or_two_tables_among_the_deps_is_an_error(tmp_path: Path) -> None:
    params = load_params(PROJECT / "params.yaml")
    with pytest.raises(StageError, match=r"found \[\]"):
        preprocess_input(params, project(tmp_path, ["data/snapshot/table.parquet", "tasks/preprocess.py"]))
    with pytest.raises(StageError, match="expected one table") as info:
        preprocess_input(params, project(tmp_path, ["${ingest.snapshot}", "${validate.accepted_snapshot}"]))
    assert "${ingest.snapshot}" in info.value.todo
    with pytest.raises(StageError, match="dvc.yaml not found"):
        preprocess_input(params, tmp_path / "nowhere")


def test_the_project_dag_feeds_evaluate_and_register_the_table_preprocess_reads() -> None:
    """evaluate and register read the raw test rows: DVC must rerun them when that table changes."""
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    table_refs = {d for d in stages["preprocess"]["deps"] if re.fullmatch(r"\$\{[\w.]+\}", d)}
    params = load_params(PROJECT / "params.yaml")
    expected = "${" + ".".join(_key_of(params, preprocess_input(params, PROJECT))) + "}"
    assert expected in table_refs
    assert expected in stages["evaluate"]["deps"] and expected in stages["register"]["deps"]


def _key_of(params, path: Path) -> tuple[str, str]:
    raw = params.model_dump(mode="json", by_alias=True)
    return next((s, k) for s, v in raw.items() if isinstance(v, dict) for k, x in v.items() if PROJECT / str(x) == path)


def test_the_frozen_test_rows_are_the_split_positions_in_order(tmp_path: Path) -> None:
    params = load_params(PROJECT / "params.yaml")
    root = project(tmp_path, ["${validate.accepted_snapshot}"])
    table = pd.DataFrame({"a": range(10), "Status": ["good", "bad"] * 5})
    (root / params.validate_.accepted_snapshot).parent.mkdir(parents=True)
    table.to_parquet(root / params.validate_.accepted_snapshot)
    (root / params.preprocess.out_dir).mkdir(parents=True)
    np.savez(root / params.preprocess.out_dir / "splits.npz", test_rows=np.array([1, 4, 8]))
    assert frozen_test_frame(params, root)["a"].tolist() == [1, 4, 8]
    np.savez(root / params.preprocess.out_dir / "splits.npz", test_rows=np.array([3, 12]))
    with pytest.raises(StageError, match="points at row 12 but the table has 10 rows"):
        frozen_test_frame(params, root)
    (root / params.preprocess.out_dir / "splits.npz").unlink()
    with pytest.raises(StageError, match="split row positions not found"):
        frozen_test_frame(params, root)
