"""Reading runs: the files of one run, DVC's experiment listing, and registry versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tabml.report.registry_runs import registry_runs
from tabml.report.runs import (
    ExpRef,
    RunSelectionError,
    flatten,
    parse_exp_show,
    parse_history,
    read_run,
    select_experiments,
)

PARAMS = {
    "data": {"name": "credit", "task": "binary"},
    "train": {"out_dir": "out/train", "lr": 0.003},
    "evaluate": {"out_dir": "out/eval", "metrics": "out/metrics.json"},
    "register": {"record": "out/registration.json"},
    "validate": {"report": "out/validation.json"},
}


def reader(files: dict[str, object]):
    def read(path: str) -> str | None:
        value = files.get(path)
        return value if value is None or isinstance(value, str) else json.dumps(value)

    return read


def test_a_run_is_read_from_the_paths_its_own_params_name() -> None:
    files = {
        "params.yaml": yaml.safe_dump(PARAMS),
        "out/metrics.json": {"task": "binary", "test": {"auroc": 0.8, "note": "text is skipped"}},
        "out/train/history.csv": "epoch,val_loss,lr\n0,0.5,0.001\n1,0.4,n/a\n",
        "out/train/run_info.json": {"wandb_run_id": "abc"},
        "out/eval/plots/roc.json": [{"fpr": 0, "tpr": 0}, {"fpr": 1, "tpr": 1}],
        "out/eval/plots/precision_recall.json": "not json",
        "out/registration.json": {"passed": True, "version": 2},
    }
    run = read_run("exp-1", "experiment", reader(files), rev="abc123")
    assert run.params["train.lr"] == 0.003 and run.dataset == "credit" and run.task == "binary"
    assert run.test == {"auroc": 0.8}
    assert run.history == [{"epoch": 0.0, "val_loss": 0.5, "lr": 0.001}, {"epoch": 1.0, "val_loss": 0.4}]
    assert list(run.curves) == ["roc.json"]
    assert run.registration == {"passed": True, "version": 2} and run.run_info == {"wandb_run_id": "abc"}
    assert run.notes == (
        "precision_recall.json is not valid JSON (out/eval/plots/precision_recall.json)",
        "no validation report (out/validation.json)",
    )


def test_a_run_with_no_files_is_empty_with_notes_not_an_error() -> None:
    run = read_run("bare", "commit", reader({}))
    assert run.test == {} and run.history == [] and run.curves == {}
    assert "no metrics (its path is not in this run's params.yaml)" in run.notes  # no path of our own is guessed


def test_flatten_and_history_parsing() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}, "e": {}}}) == {"a.b": 1, "a.c.d": [1, 2], "a.e": {}}
    assert parse_history("epoch,x\n0,1.5\n") == [{"epoch": 0.0, "x": 1.5}]


EXP_SHOW = [
    {"rev": "workspace", "name": None, "data": {"timestamp": None}, "experiments": None},
    {
        "rev": "a" * 40,
        "name": "main",
        "data": {"timestamp": "2030-01-01T09:00:00"},
        "experiments": [
            {
                "name": "old",
                "executor": None,
                "revs": [{"rev": "b" * 40, "name": "old", "data": {"timestamp": "2030-01-01T10:00:00"}}],
            },
            {
                "name": "new",
                "executor": None,
                "revs": [{"rev": "c" * 40, "name": "new", "data": {"timestamp": "2030-01-01T11:00:00"}}],
            },
            {
                "name": "broke",
                "executor": {"state": "failed"},
                "revs": [{"rev": "d" * 40, "name": "broke", "data": {}}],
            },
            {
                "name": "waiting",
                "executor": {"state": "queued"},
                "revs": [{"rev": "e" * 40, "name": "waiting", "data": {}}],
            },
        ],
    },
]


def test_dvc_exp_show_json_becomes_refs_without_queued_experiments() -> None:
    refs = parse_exp_show(EXP_SHOW)
    assert [(r.name, r.source, r.failed) for r in refs] == [
        ("workspace", "workspace", False),
        ("main", "commit", False),
        ("old", "experiment", False),
        ("new", "experiment", False),
        ("broke", "experiment", True),
    ]


def test_last_n_takes_the_newest_experiments_plus_the_baseline() -> None:
    refs = parse_exp_show(EXP_SHOW)
    assert [r.name for r in select_experiments(refs, None, 1)] == ["new", "main"]
    assert [r.name for r in select_experiments(refs, None, 10)] == ["new", "old", "broke", "main"]


def test_names_select_experiments_branches_shas_and_the_workspace() -> None:
    refs = parse_exp_show(EXP_SHOW)
    assert [r.name for r in select_experiments(refs, ["old", "workspace", "cccccc"], None)] == [
        "old",
        "workspace",
        "new",
    ]


def test_an_unknown_name_is_an_error_that_lists_what_exists() -> None:
    refs = [ExpRef("main", "a" * 40, None, "commit")]
    with pytest.raises(RunSelectionError, match=r"no experiment or revision named 'nope' \(known: main\)"):
        select_experiments(refs, ["nope"], None)


def write_version(registry: Path, version: int, auroc: float, stage: str) -> dict:
    package = registry / "credit" / "versions" / f"v{version}"
    package.mkdir(parents=True)
    (package / "metrics.json").write_text(json.dumps({"task": "binary", "test": {"auroc": auroc}}))
    (package / "history.csv").write_text("epoch,val_loss\n0,0.5\n1,0.45\n")
    lineage = {
        "params": {"data": {"name": "credit"}, "train": {"lr": 0.001 * version}},
        "git": {"rev": "f" * 40},
        "run": {"wandb_run_id": f"w{version}"},
    }
    (package / "lineage.json").write_text(json.dumps(lineage))
    (package / "gate_report.json").write_text(json.dumps({"checks": [{"reason": "auroc ok"}], "held_back": []}))
    return {
        "version": version,
        "path": f"versions/v{version}",
        "created_at": f"2030-01-0{version}",
        "metrics": {},
        "manifest_sha256": f"sha{version}",
        "stage": stage,
    }


def test_registry_versions_are_runs_with_params_from_lineage(tmp_path: Path) -> None:
    entries = [
        write_version(tmp_path, v, round(0.80 + v / 100, 4), s)
        for v, s in ((1, "archived"), (2, "archived"), (3, "production"))
    ]
    (tmp_path / "credit" / "index.json").write_text(json.dumps({"name": "credit", "versions": entries}))
    runs = registry_runs(tmp_path, "credit", last=2)
    assert [r.name for r in runs] == ["v2", "v3"]
    v3 = runs[1]
    assert v3.params["train.lr"] == 0.003 and v3.test == {"auroc": 0.83} and len(v3.history) == 2
    assert v3.registration is not None and v3.registration["stage"] == "production"
    assert v3.registration["reasons"] == ["auroc ok"] and v3.run_info == {"wandb_run_id": "w3"}
    assert [r.name for r in registry_runs(tmp_path, "credit", versions=[1, 3])] == ["v1", "v3"]
    with pytest.raises(RunSelectionError, match=r"credit has no version\(s\) \[7\]"):
        registry_runs(tmp_path, "credit", versions=[7])


def test_a_missing_registry_is_an_error_naming_the_index(tmp_path: Path) -> None:
    with pytest.raises(RunSelectionError, match="credit/index.json: no readable registry index"):
        registry_runs(tmp_path, "credit")
