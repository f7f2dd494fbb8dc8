"""Register stage: gate the evaluated model, then publish it with its lineage to the registry of record."""

from __future__ import annotations

import json
from pathlib import Path

from tabml.cli import StageError, stage_main
from tabml.gate import GateDecision, gate
from tabml.gto_tags import mirror_registration
from tabml.lineage import collect_lineage
from tabml.params import DEFAULT_PARAMS, Params
from tabml.registry import VersionEntry, locked, model_dir, publish, utc_now, write_json_atomic

DVC_LOCK = Path("dvc.lock")


def _read_json(path: Path, upstream: str) -> dict:
    if not path.exists():
        raise StageError("not found", path, f"run the {upstream} stage first: dvc repro {upstream}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StageError(
            f"not valid JSON: {exc}", path, f"run the {upstream} stage again: dvc repro {upstream}"
        ) from None


def package_sources(params: Params) -> dict[str, Path]:
    """Package file name -> the stage output copied into it."""
    train, processed = params.train.out_dir, params.preprocess.out_dir
    return {
        "model.safetensors": train / "model.safetensors",
        "model_config.json": train / "model_config.json",
        "history.csv": train / "history.csv",
        "preprocess_state.json": processed / "preprocess_state.json",
        "preprocess_report.json": processed / "preprocess_report.json",
        "metrics.json": params.evaluate.metrics,
    }


def input_schema(state: dict, path: Path) -> dict[str, object]:
    """The columns a caller must send, from preprocess_state.json."""
    if not isinstance(state.get("input_schema"), list):
        raise StageError("no input_schema list", path, "run the preprocess stage again: dvc repro preprocess")
    return {"task": state.get("task"), "labels": state.get("labels"), "columns": state["input_schema"]}


def registration_record(
    params: Params,
    decision: GateDecision,
    entry: VersionEntry | None = None,
    previous: int | None = None,
    gto: dict | None = None,
) -> dict[str, object]:
    """Pure: what reports/registration.json says, for a passed or a failed gate."""
    mdir = model_dir(params.register_.registry_dir, params.data.name)
    return {
        "passed": decision.passed,
        "dataset": params.data.name,
        "task": params.data.task,
        "version": entry.version if entry else None,
        "stage": entry.stage if entry else None,
        "previous_production": previous,
        "registry_path": str(mdir / entry.path) if entry else None,
        "manifest_sha256": entry.manifest_sha256 if entry else None,
        "gto": gto,
        "primary_metric": decision.primary_metric,
        "value": decision.value,
        "reasons": decision.reasons,
    }


def _write_record(path: Path, record: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)


def run(params: Params) -> list[Path]:
    """Gate on reports/metrics.json; if it passes, publish v<N> as production and write the record."""
    p, name, task = params.register_, params.data.name, params.data.task
    metrics = _read_json(params.evaluate.metrics, "evaluate")
    if metrics.get("task") != task:
        what = f"metrics are for task {metrics.get('task')!r} but data.task is {task!r}"
        raise StageError(what, params.evaluate.metrics, "re-run evaluation: dvc repro evaluate")
    test = metrics.get("test") or {}
    decision = gate(test, task, p)
    if not decision.passed:
        _write_record(p.record, registration_record(params, decision))
        raise StageError(
            f"model {name} not registered, gate failed: " + "; ".join(decision.blocking),
            params.evaluate.metrics,
            "improve the model (features, train params) or change register.thresholds in params.yaml",
        )
    sources = package_sources(params)
    for source in sources.values():
        if not source.exists():
            raise StageError("not found", source, "run the pipeline up to evaluate first: dvc repro evaluate")
    state_path = params.preprocess.out_dir / "preprocess_state.json"
    schema = input_schema(_read_json(state_path, "preprocess"), state_path)
    run_info = _read_json(params.train.out_dir / "run_info.json", "train")

    def documents(version: int) -> dict[str, object]:
        lineage = collect_lineage(params, name, version, utc_now(), run_info)
        return {"input_schema.json": schema, "lineage.json": lineage}

    entry, previous = publish(
        p.registry_dir, name, sources, documents, test, stage="production", lock_timeout=p.lock_timeout_seconds
    )
    gto = None
    if p.gto_tags:
        with locked(model_dir(p.registry_dir, name), p.lock_timeout_seconds):  # see tabml.gto_tags
            gto = mirror_registration(Path.cwd(), name, entry.version, [DEFAULT_PARAMS, DVC_LOCK], previous)
    record = registration_record(params, decision, entry, previous, gto)
    _write_record(p.record, record)
    print(f"registered {name} v{entry.version} (production): test {decision.primary_metric}={decision.value:.3f}")
    return [p.record, model_dir(p.registry_dir, name) / entry.path]


def main(argv: list[str] | None = None) -> int:
    return stage_main("register", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
