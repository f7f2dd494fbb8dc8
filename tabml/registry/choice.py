"""The registration tier of the register stage: which model goes on to the champion comparison (the network, or
with `register.linear_fallback` the linear model that replaces it), or a refusal that says, once, why and which
params.yaml setting would have let it through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tabml.core.errors import StageError
from tabml.core.params import Params, RegisterParams
from tabml.evaluation.outputs import details_path, read_evaluation
from tabml.registry.gate import Candidate, GateDecision, gate
from tabml.registry.package import package_sources
from tabml.registry.record import gate_document, registration_record, write_document


@dataclass(frozen=True)
class Chosen:
    """The model that goes on to the champion tier: the network, or the linear fallback's model."""

    candidate: Candidate
    decision: GateDecision  # its registration-tier decision (passed)
    metrics_doc: dict
    model_folder: Path
    sources: dict[str, Path]  # package file name -> the file copied into it
    gate_params: RegisterParams
    network_decision: GateDecision | None = None  # the network's refusal, when the linear model replaced it


def refuse(params: Params, candidate: Candidate, decision: GateDecision, n_test: int | None) -> StageError:
    """Record a refused model (nothing is registered) and say, once, why and which setting would pass it."""
    from tabml.registry.refusal import refusal_todo

    p, name = params.register_, params.data.name
    write_document(p.record, registration_record(params, decision))
    write_document(p.gate_report, gate_document(decision, name, None, n_test))
    return StageError(
        f"model {name} not registered (registration tier of the gate): " + "; ".join(decision.blocking),
        params.evaluate.metrics,
        refusal_todo(candidate, decision, params.data.task, p),
    )


def checked_metrics(params: Params) -> dict:
    """The evaluation (metrics.json joined with details.json: baselines, n_test), refused when it is for another
    task."""
    metrics_doc, task = read_evaluation(params.evaluate), params.data.task
    if metrics_doc.get("task") != task:
        what = f"metrics are for task {metrics_doc.get('task')!r} but data.task is {task!r}"
        raise StageError(what, details_path(params.evaluate), "re-run evaluation: dvc repro evaluate")
    return metrics_doc


def choose(params: Params, folder: Path) -> Chosen:
    """The registration tier; with register.linear_fallback, the linear model (written to `folder`) replaces a
    network whose only failure is the linear baseline."""
    from tabml.registry import fallback

    p, task = params.register_, params.data.task
    metrics_doc = checked_metrics(params)
    candidate = Candidate(metrics_doc.get("test") or {}, metrics_doc.get("baselines") or {})
    decision = gate(candidate, None, task, p)
    if decision.passed:
        return Chosen(candidate, decision, metrics_doc, params.train.out_dir, package_sources(params), p)
    if not (p.linear_fallback and fallback.lost_to_linear(decision)):
        raise refuse(params, candidate, decision, metrics_doc.get("n_test"))
    linear_doc = fallback.fit_fallback(params, metrics_doc, folder)
    linear = Candidate(linear_doc["test"], metrics_doc.get("baselines") or {})
    linear_params = fallback.without_linear_baseline(p)
    linear_decision = gate(linear, None, task, linear_params)
    if not linear_decision.passed:
        raise refuse(params, linear, linear_decision, metrics_doc.get("n_test"))
    noted = fallback.note_fallback(linear_decision, decision)
    print(f"[register] {noted.reasons[0]}", flush=True)
    sources = fallback.fallback_sources(params, folder)
    return Chosen(linear, noted, linear_doc, folder, sources, linear_params, decision)
