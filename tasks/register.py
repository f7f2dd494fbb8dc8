"""register: gate the evaluated model, compare it with production on the same test rows, publish it.

A model that fails the thresholds or does not beat the baselines is not registered (the stage fails; with
`register.linear_fallback`, a linear model replaces a network beaten by the linear baseline:
tabml.registry.choice). One
that passes is registered; it becomes production only if it beats the current production model on the
frozen test rows (tabml.registry.gate), otherwise it is kept as staging for a person to review. Every number of
the decision goes to reports/gate.json and into the package as gate_report.json.

A model whose weights, architecture and preprocessing equal an existing version's is recorded against that
version (no new version, no tags). Inside `dvc exp run` (DVC sets DVC_EXP_* in the stage's environment) nothing
is registered unless `register.in_experiments` is true.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from tabml.core.errors import StageError
from tabml.core.files import utc_now
from tabml.core.params import DEFAULT_PARAMS, Params
from tabml.core.stage import stage_main
from tabml.data.processed import STATE_FILE, read_state
from tabml.registry.choice import Chosen, choose
from tabml.registry.gate import ChampionEvidence, ChampionUnavailable, GateDecision, gate
from tabml.registry.index import ActiveStage, RegistryIndex, VersionEntry, production_version
from tabml.registry.package import (
    GATE_REPORT_FILE,
    INPUT_SCHEMA_FILE,
    LINEAGE_FILE,
    REFERENCE_FILE,
    input_schema,
    signing_key,
)
from tabml.registry.record import gate_document, registration_record, write_document, write_record
from tabml.registry.store import identical_version, locked, model_dir, publish, read_index, record_rerun
from tabml.training.trained_model import CONFIG_FILE, WEIGHTS_FILE, read_run_info

if TYPE_CHECKING:
    import pandas as pd

DVC_LOCK = Path("dvc.lock")
IDENTITY = (WEIGHTS_FILE, CONFIG_FILE, STATE_FILE)  # equal files: the same model, registered again
EXPERIMENT_ENVS = ("DVC_EXP_BASELINE_REV", "DVC_EXP_NAME")  # set by `dvc exp run` for every stage it runs


def in_dvc_experiment() -> bool:
    return any(os.environ.get(name) for name in EXPERIMENT_ENVS)


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
    params: Params, frame: pd.DataFrame, metrics_doc: dict, model_folder: Path
) -> ChampionEvidence | ChampionUnavailable | None:
    """Score this model (the folder `model_folder`) and production on the frozen test rows `frame`."""
    from tabml.evaluation.metrics import task_metrics
    from tabml.evaluation.scorer import load_scorer
    from tabml.evaluation.slices import missing_columns, slice_groups
    from tabml.registry.champion import champion_evidence
    from tabml.registry.gate import primary_metric_for

    p = params.register_
    threshold = metrics_doc.get("threshold")
    challenger = load_scorer(model_folder, read_state(params.preprocess.out_dir), threshold)
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
    name, key = params.data.name, signing_key(p)
    return champion_evidence(p.registry_dir, name, challenger, frame, metric, groups, p.champion, key)


def skip(params: Params, decision: GateDecision, n_test: int | None, why: str) -> list[Path]:
    """Register nothing, say why in the reports (the stage's outputs) and on stdout; the stage succeeds."""
    p, name = params.register_, params.data.name
    skipped = replace(decision, stage=None, held_back=[why])
    write_document(p.gate_report, gate_document(skipped, name, None, n_test))
    record = registration_record(params, skipped) | {"passed": decision.passed, "skipped": why}
    track(params, read_run_info(params.train.out_dir), write_record(p.record, record))
    print(f"not registered {name}: {why}", flush=True)
    return [p.record, p.gate_report]


def rerun(
    params: Params, decision: GateDecision, n_test: int | None, version: int, recorded: bool = False
) -> list[Path]:
    """Record this run against the identical `version` (unless publish did): no new version, production untouched."""
    p, name = params.register_, params.data.name
    mdir = model_dir(p.registry_dir, name)
    if not recorded:
        record_rerun(p.registry_dir, name, version, lock_timeout=p.lock_timeout_seconds)
    entry = read_index(mdir).get(version)
    assert entry is not None, "record_rerun checked it"
    why = f"identical weights and preprocessing to v{version}: recorded against it, no new version"
    same = replace(decision, stage=entry.stage, held_back=[why])  # type: ignore[arg-type]
    write_document(p.gate_report, gate_document(same, name, version, n_test))
    gto = reconcile_gto(params)
    record = registration_record(params, same, entry, None, gto) | {"promoted": False, "same_as": version}
    track(params, read_run_info(params.train.out_dir), write_record(p.record, record))
    print(f"registered {name} v{version} again ({entry.stage or 'no stage'}): {why}", flush=True)
    return [p.record, p.gate_report, model_dir(p.registry_dir, name) / entry.path]


def early_exit(params: Params, chosen: Chosen) -> list[Path] | None:
    """Stop before the comparison: `dvc exp run` (unless asked), a model the registry already has."""
    p, name = params.register_, params.data.name
    decision, n_test, sources = chosen.decision, chosen.metrics_doc.get("n_test"), chosen.sources
    if in_dvc_experiment() and not p.in_experiments:
        return skip(params, decision, n_test, "this is a `dvc exp run` (set register.in_experiments: true to register)")
    for source in sources.values():
        if not source.exists():
            raise StageError("not found", source, "run the pipeline up to evaluate first: dvc repro evaluate")
    signing_key(p)  # a configured but unset key fails before any work
    mdir = model_dir(p.registry_dir, name)
    same = identical_version(mdir, read_index(mdir), sources, IDENTITY)
    return rerun(params, decision, n_test, same) if same is not None else None


def packaged_reference(path: Path) -> dict[str, object]:
    """The validation reference as a package document (predict checks inputs against it); none if absent."""
    from tabml.validation.report import load_reference

    return {REFERENCE_FILE: load_reference(path).to_json_dict()} if path.exists() else {}


def run(params: Params) -> list[Path]:
    """Gate on reports/metrics.json and on production; publish v<N> as production or staging."""
    with tempfile.TemporaryDirectory(prefix="tabml-linear-") as folder:  # the linear fallback's model, if any
        return register(params, Path(folder))


def register(params: Params, folder: Path) -> list[Path]:
    from tabml.data.processed import split_rows
    from tabml.data.snapshot import read_accepted
    from tabml.registry.fallback import note_fallback
    from tabml.registry.lineage import collect_lineage, data_profile
    from tabml.validation.report import reference_path

    p, name, task = params.register_, params.data.name, params.data.task
    chosen = choose(params, folder)
    done = early_exit(params, chosen)
    if done is not None:
        return done
    candidate, sources = chosen.candidate, chosen.sources
    schema, run_info = input_schema(read_state(params.preprocess.out_dir)), read_run_info(params.train.out_dir)
    table_path = params.preprocess.input
    table = read_accepted(table_path)
    frame = split_rows(params.preprocess.out_dir, table, "test", table_path)
    champion = compare_with_production(params, frame, chosen.metrics_doc, chosen.model_folder)
    decision = gate(candidate, champion, task, chosen.gate_params)
    if chosen.network_decision is not None:
        decision = note_fallback(decision, chosen.network_decision)
    ref_path = reference_path(params.validate_.reference_dir, name)
    profile, reference = data_profile(table_path, table, ref_path), packaged_reference(ref_path)

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
        return {INPUT_SCHEMA_FILE: schema, LINEAGE_FILE: lineage, GATE_REPORT_FILE: gate_report} | reference

    entry, before, after = publish(
        p.registry_dir,
        name,
        sources,
        documents,
        candidate.metrics,
        stage=stage_for,
        lock_timeout=p.lock_timeout_seconds,
        identity=IDENTITY,
        key=signing_key(p),
    )
    if before.get(entry.version) is not None:  # an identical model was published while this one was compared
        return rerun(params, decision, len(frame), entry.version, recorded=True)
    package_dir = model_dir(p.registry_dir, name) / entry.path
    mirrors = mirror(params, entry, package_dir, run_info)
    previous = production_version(before) if entry.stage == "production" else None
    write_document(p.gate_report, gate_document(held[0], name, entry.version, len(frame)))
    record = write_record(p.record, registration_record(params, held[0], entry, previous, *mirrors))
    track(params, run_info, record)
    print(summary_line(name, entry, held[0]), flush=True)
    return [p.record, p.gate_report, package_dir]


def reconcile_gto(params: Params) -> dict | None:
    """Bring the GTO tags in line with the index (best-effort; None when off or skipped)."""
    p, name = params.register_, params.data.name
    if not p.gto_tags:
        return None
    mdir = model_dir(p.registry_dir, name)
    with locked(mdir, p.lock_timeout_seconds):  # see tabml.registry.gto
        from tabml.registry.gto import reconcile

        return reconcile(Path.cwd(), name, read_index(mdir), [DEFAULT_PARAMS, DVC_LOCK])


def mirror(params: Params, entry: VersionEntry, package_dir: Path, run_info: dict) -> tuple[dict | None, dict | None]:
    """The GTO tags and the W&B model-registry link of the new version (both best-effort)."""
    from tabml.tracking.model_registry import link_to_model_registry

    name, gto = params.data.name, reconcile_gto(params)
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
