import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tabml.core.params import Params, load_params
from tabml.core.redact import redact, redact_text
from tabml.registry.lineage import build_lineage, collect_lineage, git_state, library_versions
from tests.workspace import EXAMPLE_PARAMS

DVC_LOCK = {
    "schema": "2.0",
    "stages": {
        "ingest": {
            "cmd": "python -m tasks.ingest",
            "deps": [
                {"path": "https://reader:hunter2@data.example.com/credit.csv", "hash": "md5", "md5": "aa", "size": 9},
                {"path": "tasks/ingest.py", "hash": "md5", "md5": "bb", "size": 3},
            ],
            "params": {"params.yaml": {"data.path": "data/landing/credit.csv", "db_password": "hunter2"}},
            "outs": [{"path": "data/snapshot/table.parquet", "hash": "md5", "md5": "cc", "size": 5}],
        },
        "train": {
            "cmd": "python -m tasks.train",
            "deps": [{"path": "data/processed", "hash": "md5", "md5": "dd.dir", "nfiles": 4}],
            "outs": [{"path": "models/train", "hash": "md5", "md5": "ee.dir", "nfiles": 4}],
        },
    },
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def repo_with_lock(root: Path) -> Path:
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.name", "Lineage Test")
    git(root, "config", "user.email", "lineage@example.invalid")
    (root / "dvc.lock").write_text(yaml.safe_dump(DVC_LOCK))
    (root / "params.yaml").write_text(EXAMPLE_PARAMS.read_text())
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


@pytest.fixture
def params() -> Params:
    return load_params(EXAMPLE_PARAMS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pa55@host.example/x.csv", "https://***@host.example/x.csv"),
        ("s3://AKIAKEY:sec/ret@bucket/key", "s3://***@bucket/key"),
        ("postgresql+psycopg://app:p%40ss@db:5432/prod", "postgresql+psycopg://***@db:5432/prod"),
        ("https://ghp_token@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
        ("https://host/data.csv?api_key=abc123&page=2", "https://host/data.csv?api_key=***&page=2"),
        ("data/landing/credit.csv", "data/landing/credit.csv"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("https://host.example/files/v1/data.csv", "https://host.example/files/v1/data.csv"),
        (
            "see https://u:p@a.example/x and ftp://t@b.example/y",
            "see https://***@a.example/x and ftp://***@b.example/y",
        ),
    ],
)
def test_redact_text_removes_url_credentials(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_redact_blanks_secret_keys_at_any_depth_and_keeps_the_rest() -> None:
    record = {
        "WANDB_API_KEY": "k1",
        "nested": [{"Password": "p", "passwd": "p", "db": {"apikey": "k", "auth_token": "t", "port": 5432}}],
        "client_secret": {"value": "s"},
        "Credentials": ["c"],
        "https://u:p@host/a": "md5",
        "seed": 42,
        "tokenizer_levels": None,
    }
    out = redact(record)
    assert out == {
        "WANDB_API_KEY": "***",
        "nested": [{"Password": "***", "passwd": "***", "db": {"apikey": "***", "auth_token": "***", "port": 5432}}],
        "client_secret": "***",
        "Credentials": "***",
        "https://***@host/a": "md5",
        "seed": 42,
        "tokenizer_levels": "***",  # errs on the side of redaction: "token" is in the key
    }


def test_build_lineage_shape(params: Params) -> None:
    lineage = build_lineage(
        name="credit",
        version=3,
        created_at="2030-01-01T00:00:00.000000Z",
        git={"rev": "abc", "dirty": False},
        dvc_lock=None,
        params=params.model_dump(mode="json", by_alias=True),
        libraries={"torch": "2.13.0"},
        run_info={"seed": 7, "wandb_run_id": "run-1", "extra": "ignored"},
        flow_run_id="flow-9",
        hostname="box",
    )
    assert lineage["model"] == {"name": "credit", "version": 3}
    assert lineage["run"] == {"seed": 7, "wandb_run_id": "run-1", "prefect_flow_run_id": "flow-9", "hostname": "box"}
    assert set(lineage["params"]) == {"data", "ingest", "validate", "preprocess", "train", "evaluate", "register"}  # type: ignore[arg-type]
    assert lineage["params"]["train"]["seed"] == params.train.seed  # type: ignore[index]


def test_collect_lineage_in_a_git_repo_records_code_data_and_no_secret(
    tmp_path: Path, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = repo_with_lock(tmp_path / "repo")
    monkeypatch.setenv("TABML_FLOW_RUN_ID", "8c1f-flow")
    monkeypatch.setenv("WANDB_API_KEY", "sk-env-secret-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-env-secret-value")
    lineage = collect_lineage(params, "credit", 1, "2030-01-01T00:00:00Z", {"seed": 42, "wandb_run_id": None}, repo)

    assert lineage["git"] == {"rev": git(repo, "rev-parse", "HEAD"), "dirty": False}
    stages = lineage["dvc_lock"]
    assert stages["ingest"]["deps"] == {  # type: ignore[index]
        "https://***@data.example.com/credit.csv": "aa",
        "tasks/ingest.py": "bb",
    }
    assert stages["ingest"]["params"] == {  # type: ignore[index]
        "params.yaml": {"data.path": "data/landing/credit.csv", "db_password": "***"}
    }
    assert stages["train"] == {"deps": {"data/processed": "dd.dir"}, "outs": {"models/train": "ee.dir"}, "params": {}}  # type: ignore[index]
    assert lineage["run"]["prefect_flow_run_id"] == "8c1f-flow"  # type: ignore[index]
    assert lineage["run"]["seed"] == 42 and lineage["run"]["wandb_run_id"] is None  # type: ignore[index]
    assert lineage["libraries"]["torch"] and lineage["libraries"]["great_expectations"]  # type: ignore[index]

    text = json.dumps(lineage)
    for secret in ("hunter2", "sk-env-secret-value", "aws-env-secret-value", "WANDB_API_KEY", "AWS_SECRET"):
        assert secret not in text


def test_git_state_sees_a_dirty_tree_and_is_none_outside_git(tmp_path: Path) -> None:
    repo = repo_with_lock(tmp_path / "repo")
    (repo / "params.yaml").write_text("edited: true\n")
    assert git_state(repo)["dirty"] is True
    (tmp_path / "plain").mkdir()
    assert git_state(tmp_path / "plain") == {"rev": None, "dirty": None}


def test_no_flow_run_id_and_no_dvc_lock_are_null(tmp_path: Path, params: Params, monkeypatch) -> None:
    monkeypatch.delenv("TABML_FLOW_RUN_ID", raising=False)
    lineage = collect_lineage(params, "credit", 1, "t", {"seed": 1}, tmp_path)
    assert lineage["dvc_lock"] is None and lineage["git"] == {"rev": None, "dirty": None}
    assert lineage["run"]["prefect_flow_run_id"] is None  # type: ignore[index]


def test_library_versions_come_from_metadata_without_importing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    versions = library_versions()
    assert set(versions) >= {"torch", "lightning", "scikit-learn", "dvc", "prefect", "wandb", "great_expectations"}
    assert "wandb" not in sys.modules


def test_the_data_profile_hashes_schema_and_statistics_not_file_bytes(tmp_path: Path) -> None:
    import pandas as pd

    from tabml.registry.lineage import data_profile, table_profile

    frame = pd.DataFrame({"age": [30, 40, None], "home": ["rent", "own", "rent"], "flag": [True, False, True]})
    profile = table_profile(frame)
    assert profile["rows"] == 3
    age, home, flag = profile["columns"]  # type: ignore[misc]
    assert age == {"name": "age", "dtype": "float64", "nulls": 1, "distinct": 2, "min": 30.0, "mean": 35.0, "max": 40.0}
    assert home == {"name": "home", "dtype": str(frame["home"].dtype), "nulls": 0, "distinct": 2}
    assert "mean" not in flag

    expectations = tmp_path / "expectations.json"
    expectations.write_text('{"expectations": []}')
    first = data_profile(Path("t.parquet"), frame, expectations)
    assert first["reference_expectations"]["sha256"] == hashlib.sha256(b'{"expectations": []}').hexdigest()  # type: ignore[index]
    assert first == data_profile(Path("t.parquet"), frame.copy(), expectations)  # same data, same hashes
    changed = frame.assign(age=[30, 41, None])
    assert data_profile(Path("t.parquet"), changed, expectations)["snapshot"] != first["snapshot"]
    assert data_profile(Path("t.parquet"), frame, tmp_path / "absent.json")["reference_expectations"] is None


def test_build_lineage_records_the_data_profile(params: Params) -> None:
    common = {
        "name": "credit",
        "version": 1,
        "created_at": "t",
        "git": {},
        "dvc_lock": None,
        "params": {},
        "libraries": {},
        "run_info": {},
        "flow_run_id": None,
        "hostname": "h",
    }
    profile = {"snapshot": {"path": "data/snapshot/accepted.parquet", "rows": 3, "profile_sha256": "ab"}}
    assert build_lineage(**common, profile=profile)["data_profile"] == profile  # type: ignore[arg-type]
    assert build_lineage(**common)["data_profile"] is None  # type: ignore[arg-type]
