"""register: gate the evaluated model, compare it with production on the same test rows, publish it.

A model that fails the thresholds or does not beat the baselines is not registered (the stage fails). One
that passes is registered; it becomes production only if it beats the current production model on the
frozen test rows (tabml.registry.gate), otherwise it is kept as staging for a person to review. Every number of
the decision goes to reports/gate.json and into the package as gate_report.json.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from tabml.core.errors import StageError
from tabml.core.files import utc_now
from tabml.core.params import DEFAULT_PARAMS, Params
from tabml.core.stage import stage_main
from tabml.data.processed import read_state
from tabml.evaluation.outputs import details_path, read_evaluation
from tabml.registry.gate import Candidate, ChampionEvidence, ChampionUnavailable, GateDecision, gate
from tabml.registry.index import ActiveStage, RegistryIndex, VersionEntry, production_version, stage_moves
from tabml.registry.package import GATE_REPORT_FILE, INPUT_SCHEMA_FILE, LINEAGE_FILE, input_schema, package_sources
from tabml.registry.record import gate_document, registration_record, write_document
from tabml.registry.store import locked, model_dir, publish
from tabml.training.trained_model import read_run_info

if TYPE_CHECKING:
    import pandas as pd

DVC_LOCK = Path("dvc.lock")


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
    params: Params, frame: pd.DataFrame, metrics_doc: dict
) -> ChampionEvidence | ChampionUnavailable | None:
    """Score this model and production on the frozen test rows `frame`."""
    from tabml.evaluation.metrics import task_metrics
    from tabml.evaluation.scorer import load_scorer
    from tabml.evaluation.slices import missing_columns, slice_groups
    from tabml.registry.champion import champion_evidence
    from tabml.registry.gate import primary_metric_for

    p = params.register_
    threshold = metrics_doc.get("threshold")
    challenger = load_scorer(params.train.out_dir, read_state(params.preprocess.out_dir), threshold)
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
    return champion_evidence(p.registry_dir, params.data.name, challenger, frame, metric, groups, p.champion)


def refuse(params: Params, decision: GateDecision, n_test: int | None) -> StageError:
    """Record a refused model (nothing is registered) and say why."""
    p, name = params.register_, params.data.name
    write_document(p.record, registration_record(params, decision))
    write_document(p.gate_report, gate_document(decision, name, None, n_test))
    return StageError(
        f"model {name} not registered, gate failed: " + "; ".join(decision.blocking),
        params.evaluate.metrics,
        "improve the model (features, train params) or change register.thresholds / register.baselines",
    )


def run(params: Params) -> list[Path]:
    """Gate on reports/metrics.json and on production; publish v<N> as production or staging."""
    from tabml.data.processed import split_rows
    from tabml.data.snapshot import read_accepted
    from tabml.registry.lineage import collect_lineage, data_profile
    from tabml.validation.report import reference_path

    p, name, task = params.register_, params.data.name, params.data.task
    metrics_doc = read_evaluation(params.evaluate)  # metrics.json and details.json (baselines, n_test)
    if metrics_doc.get("task") != task:
        what = f"metrics are for task {metrics_doc.get('task')!r} but data.task is {task!r}"
        raise StageError(what, details_path(params.evaluate), "re-run evaluation: dvc repro evaluate")
    candidate = Candidate(metrics_doc.get("test") or {}, metrics_doc.get("baselines") or {})
    decision = gate(candidate, None, task, p)  # the registration tier needs no champion
    if not decision.passed:
        raise refuse(params, decision, metrics_doc.get("n_test"))
    sources = package_sources(params)
    for source in sources.values():
        if not source.exists():
            raise StageError("not found", source, "run the pipeline up to evaluate first: dvc repro evaluate")
    schema = input_schema(read_state(params.preprocess.out_dir))
    run_info = read_run_info(params.train.out_dir)
    table_path = params.preprocess.input
    table = read_accepted(table_path)
    frame = split_rows(params.preprocess.out_dir, table, "test", table_path)
    decision = gate(candidate, compare_with_production(params, frame, metrics_doc), task, p)
    profile = data_profile(table_path, table, reference_path(params.validate_.reference_dir, name))

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
        gate_report = gate_document(held[0], name, version, len(frame))
        return {INPUT_SCHEMA_FILE: schema, LINEAGE_FILE: lineage, GATE_REPORT_FILE: gate_report}

    entry, before, after = publish(
        p.registry_dir,
        name,
        sources,
        documents,
        candidate.metrics,
        stage=stage_for,
        lock_timeout=p.lock_timeout_seconds,
    )
    package_dir = model_dir(p.registry_dir, name) / entry.path
    mirrors = mirror(params, entry, before, after, package_dir, run_info)
    previous = production_version(before) if entry.stage == "production" else None
    write_document(p.gate_report, gate_document(held[0], name, entry.version, len(frame)))
    record = write_document(p.record, registration_record(params, held[0], entry, previous, *mirrors))
    track(params, run_info, record)
    print(summary_line(name, entry, held[0]), flush=True)
    return [p.record, p.gate_report, package_dir]


def mirror(
    params: Params, entry: VersionEntry, before: RegistryIndex, after: RegistryIndex, package_dir: Path, run_info: dict
) -> tuple[dict | None, dict | None]:
    """The GTO tags and the W&B model-registry link of the new version (both best-effort)."""
    from tabml.tracking.model_registry import link_to_model_registry

    p, name, gto = params.register_, params.data.name, None
    if p.gto_tags:
        with locked(model_dir(p.registry_dir, name), p.lock_timeout_seconds):  # see tabml.registry.gto
            from tabml.registry.gto import mirror_registration

            files = [DEFAULT_PARAMS, DVC_LOCK]
            gto = mirror_registration(Path.cwd(), name, entry.version, files, stage_moves(before, after))
    run_id = run_info.get("wandb_run_id")
    linked = link_to_model_registry(
        params.tracking, run_id if isinstance(run_id, str) else None, package_dir, name, entry.version, entry.stage
    )
    return gto, linked


def track(params: Params, run_info: dict, record_path: Path) -> None:
    from tabml.registry.record import read_record
    from tabml.tracking.stage_reports import registration_summary, track_stage

    run_id = run_info.get("wandb_run_id")
    config = {"register": params.register_.model_dump(mode="json"), "dataset": params.data.name}
    summary = registration_summary(read_record(record_path) or {})
    track_stage(params.tracking, "register", run_id if isinstance(run_id, str) else None, config, summary)


def main(argv: list[str] | None = None) -> int:
    return stage_main("register", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
