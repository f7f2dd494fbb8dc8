"""register: gate the evaluated model, compare it with production on the same test rows, publish it.

A model that fails the thresholds or does not beat the baselines is not registered (the stage fails). One
that passes is registered; it becomes production only if it beats the current production model on the
frozen test rows (tabml.gate), otherwise it is kept as staging for a person to review. Every number of the
decision goes to reports/gate.json and into the package as gate_report.json.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from tabml.core.errors import StageError
from tabml.core.files import utc_now, write_json_atomic
from tabml.core.params import DEFAULT_PARAMS, Params
from tabml.core.stage import stage_main
from tabml.registry.gate import Candidate, ChampionEvidence, ChampionUnavailable, GateDecision, gate
from tabml.registry.index import ActiveStage, RegistryIndex, VersionEntry, production_version, stage_moves
from tabml.registry.store import locked, model_dir, publish

if TYPE_CHECKING:
    import pandas as pd

DVC_LOCK = Path("dvc.lock")
STATE_FILE = "preprocess_state.json"
FIGURES_DIR = "figures"  # under evaluate.out_dir: the PNGs evaluate drew
SLICES_FILE = "slices.json"


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
    """Package file name -> the stage output copied into it (the evaluation's PNG figures included)."""
    train, processed, evaluated = params.train.out_dir, params.preprocess.out_dir, params.evaluate.out_dir
    figures = sorted((evaluated / FIGURES_DIR).glob("*.png"))
    return {
        "model.safetensors": train / "model.safetensors",
        "model_config.json": train / "model_config.json",
        "history.csv": train / "history.csv",
        STATE_FILE: processed / STATE_FILE,
        "preprocess_report.json": processed / "preprocess_report.json",
        "metrics.json": params.evaluate.metrics,
        SLICES_FILE: evaluated / SLICES_FILE,
        **{figure.name: figure for figure in figures},
    }


def input_schema(state: dict, path: Path) -> dict[str, object]:
    """The columns a caller must send, from preprocess_state.json."""
    if not isinstance(state.get("input_schema"), list):
        raise StageError("no input_schema list", path, "run the preprocess stage again: dvc repro preprocess")
    return {
        "task": state.get("task"),
        "target": state.get("target"),
        "labels": state.get("labels"),
        "id_column": state.get("id_column"),
        "columns": state["input_schema"],
    }


def registration_record(
    params: Params,
    decision: GateDecision,
    entry: VersionEntry | None = None,
    previous: int | None = None,
    gto: dict | None = None,
    wandb: dict | None = None,
) -> dict[str, object]:
    """Pure: what reports/registration.json says, for a refused, a staged or a promoted model."""
    mdir = model_dir(params.register_.registry_dir, params.data.name)
    return {
        "passed": decision.passed,
        "dataset": params.data.name,
        "task": params.data.task,
        "version": entry.version if entry else None,
        "stage": entry.stage if entry else None,
        "promoted": bool(entry and entry.stage == "production"),
        "previous_production": previous,
        "champion_version": decision.champion_version,
        "registry_path": str(mdir / entry.path) if entry else None,
        "manifest_sha256": entry.manifest_sha256 if entry else None,
        "gate_report": str(params.register_.gate_report),
        "gto": gto,
        "wandb_registry": wandb,
        "primary_metric": decision.primary_metric,
        "value": decision.value,
        "reasons": decision.reasons,
        "held_back": decision.held_back,
    }


def gate_document(decision: GateDecision, name: str, version: int | None, n_test: int | None) -> dict[str, object]:
    return {"name": name, "version": version, "n_test": n_test, **decision.report()}


def _write(path: Path, document: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, document)


def summary_line(name: str, entry: VersionEntry, decision: GateDecision) -> str:
    """`registered credit v2 (production): test auroc=0.861; ...` - one line saying what happened and why."""
    line = f"registered {name} v{entry.version} ({entry.stage}): test {decision.primary_metric}={decision.value:.3f}"
    ev = decision.champion
    if ev is not None:
        ci = ev.interval
        line += (
            f"; vs production v{ev.version}: {ci.improvement:+.4f} "
            f"[{ci.confidence:.0%} CI {ci.low:+.4f}, {ci.high:+.4f}]"
        )
    if entry.stage == "staging":
        line += f"; not promoted: {decision.held_back[0]}" if decision.held_back else "; not promoted"
        line += f" (promote by hand: python -m tabml.registry promote {entry.version})"
    return line


def compare_with_production(
    params: Params, table: pd.DataFrame, metrics_doc: dict
) -> tuple[ChampionEvidence | ChampionUnavailable | None, int]:
    """Score this model and production on the frozen test rows; returns the evidence and the row count."""
    from tabml.evaluation.metrics import task_metrics
    from tabml.evaluation.scorer import frozen_test_frame, load_scorer
    from tabml.evaluation.slices import missing_columns, slice_groups
    from tabml.registry.champion import champion_evidence
    from tabml.registry.gate import primary_metric_for

    p, processed = params.register_, params.preprocess.out_dir
    frame = frozen_test_frame(params, table=table)
    challenger = load_scorer(params.train.out_dir, processed / STATE_FILE, params.evaluate.metrics)
    metric = primary_metric_for(params.data.task, p)
    # the rows and the model must be the ones evaluate scored: a stale output would compare the wrong thing
    measured = task_metrics(
        challenger.state.task, challenger.scores(frame), challenger.target(frame), challenger.threshold
    )
    reported = (metrics_doc.get("test") or {}).get(metric)
    if reported is None or abs(measured[metric] - float(reported)) > 1e-4:
        raise StageError(
            f"this model scores {metric}={measured[metric]:.6f} on the test rows, metrics.json says {reported}",
            params.evaluate.metrics,
            "the evaluation is stale: run `dvc repro evaluate`",
        )
    columns = params.evaluate.slice_columns(params.data.name)
    absent = missing_columns(frame, columns)
    if absent:
        raise StageError(f"slice columns {absent} are not in the table", "params.yaml", "fix evaluate.slices")
    groups = slice_groups(frame, columns, params.evaluate.min_slice_rows)
    evidence = champion_evidence(p.registry_dir, params.data.name, challenger, frame, metric, groups, p.champion)
    return evidence, len(frame)


def run(params: Params) -> list[Path]:
    """Gate on reports/metrics.json and on production; publish v<N> as production or staging."""
    from tabml.evaluation.scorer import read_input_table
    from tabml.registry.lineage import collect_lineage, data_profile
    from tabml.tracking.stage_reports import track_stage

    p, name, task = params.register_, params.data.name, params.data.task
    metrics_doc = _read_json(params.evaluate.metrics, "evaluate")
    if metrics_doc.get("task") != task:
        what = f"metrics are for task {metrics_doc.get('task')!r} but data.task is {task!r}"
        raise StageError(what, params.evaluate.metrics, "re-run evaluation: dvc repro evaluate")
    candidate = Candidate(metrics_doc.get("test") or {}, metrics_doc.get("baselines") or {})
    decision = gate(candidate, None, task, p)  # the registration tier needs no champion
    if not decision.passed:
        _write(p.record, registration_record(params, decision))
        _write(p.gate_report, gate_document(decision, name, None, metrics_doc.get("n_test")))
        raise StageError(
            f"model {name} not registered, gate failed: " + "; ".join(decision.blocking),
            params.evaluate.metrics,
            "improve the model (features, train params) or change register.thresholds / register.baselines",
        )
    sources = package_sources(params)
    for source in sources.values():
        if not source.exists():
            raise StageError("not found", source, "run the pipeline up to evaluate first: dvc repro evaluate")
    state_path = params.preprocess.out_dir / STATE_FILE
    schema = input_schema(_read_json(state_path, "preprocess"), state_path)
    run_info = _read_json(params.train.out_dir / "run_info.json", "train")
    table_path, table = read_input_table(params)
    evidence, n_test = compare_with_production(params, table, metrics_doc)
    decision = gate(candidate, evidence, task, p)
    expectations = params.validate_.reference_dir / name / "expectations.json"
    profile = data_profile(table_path, table, expectations)

    held: list[GateDecision] = [decision]  # what was decided under the registry lock (see stage_for)

    def stage_for(index: RegistryIndex) -> ActiveStage | None:
        # production may have moved since it was scored (a promotion, a concurrent run): then do not replace it
        now = production_version(index)
        if decision.stage == "production" and now != decision.champion_version:
            moved = f"production changed to v{now} while this model was compared with v{decision.champion_version}"
            held[0] = replace(decision, stage="staging", held_back=[*decision.held_back, moved])
        return held[0].stage

    def documents(version: int) -> dict[str, object]:
        lineage = collect_lineage(params, name, version, utc_now(), run_info, profile=profile)
        gate_report = gate_document(held[0], name, version, n_test)
        return {"input_schema.json": schema, "lineage.json": lineage, "gate_report.json": gate_report}

    entry, before, after = publish(
        p.registry_dir,
        name,
        sources,
        documents,
        candidate.metrics,
        stage=stage_for,
        lock_timeout=p.lock_timeout_seconds,
    )
    decision = held[0]
    gto, previous = None, production_version(before) if entry.stage == "production" else None
    if p.gto_tags:
        with locked(model_dir(p.registry_dir, name), p.lock_timeout_seconds):  # see tabml.gto_tags
            from tabml.registry.gto import mirror_registration

            gto = mirror_registration(
                Path.cwd(), name, entry.version, [DEFAULT_PARAMS, DVC_LOCK], stage_moves(before, after)
            )
    from tabml.tracking.model_registry import link_to_model_registry

    package_dir = model_dir(p.registry_dir, name) / entry.path
    linked = link_to_model_registry(
        params.tracking, run_info.get("wandb_run_id"), package_dir, name, entry.version, entry.stage
    )
    _write(p.gate_report, gate_document(decision, name, entry.version, n_test))
    _write(p.record, registration_record(params, decision, entry, previous, gto, linked))
    track_stage(params, "register")
    print(summary_line(name, entry, decision), flush=True)
    return [p.record, p.gate_report, package_dir]


def main(argv: list[str] | None = None) -> int:
    return stage_main("register", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
