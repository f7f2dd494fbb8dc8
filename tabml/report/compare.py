"""Which run is best, and why: runs ranked on the primary metric, the params that differ, the verdict in words.

Pure: runs in, a Comparison out. The primary metric and its direction are the gate's (tabml.gate), so the
report ranks runs the way registration judges them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tabml.core.metric_names import LOWER_IS_BETTER, PRIMARY_METRIC
from tabml.report.runs import Run

MISSING = object()


@dataclass(frozen=True)
class Comparison:
    runs: list[Run]  # best first; runs without the primary metric last, in their given order
    primary: str
    lower_is_better: bool
    metric_names: list[str]  # primary first
    best_by_metric: dict[str, str]  # metric -> name of the run best on it
    differing: list[str]  # param keys whose values are not the same in every run
    constant: dict[str, Any]  # param key -> the value every run shares
    reference: Run | None  # what the best run is measured against: the baseline commit, else the runner-up
    verdict: list[str]  # the answer in sentences, most important first
    warnings: list[str]


def primary_metric(runs: Sequence[Run]) -> tuple[str, bool]:
    """`register.primary_metric` of the newest run, else the task's default; and whether lower is better."""
    configured = next(
        (r.params.get("register.primary_metric") for r in runs if r.params.get("register.primary_metric")), None
    )
    task = next((r.task for r in runs if r.task), None)
    metric = str(configured or PRIMARY_METRIC.get(task or "binary", "auroc"))
    return metric, metric in LOWER_IS_BETTER


def rank(runs: Sequence[Run], metric: str, lower_is_better: bool) -> list[Run]:
    """Best first on `metric`; runs that lack it keep their order at the end."""
    measured = [r for r in runs if metric in r.test]
    rest = [r for r in runs if metric not in r.test]
    return sorted(measured, key=lambda r: r.test[metric] if lower_is_better else -r.test[metric]) + rest


def _same(a: object, b: object) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def params_diff(runs: Sequence[Run]) -> tuple[list[str], dict[str, Any]]:
    """(keys that differ between runs, key -> value shared by all); runs without params are ignored."""
    with_params = [r for r in runs if r.params]
    keys = sorted({k for r in with_params for k in r.params})
    differing, constant = [], {}
    for key in keys:
        values = [r.params.get(key, MISSING) for r in with_params]
        if all(_same(v, values[0]) for v in values[1:]) and values[0] is not MISSING:
            constant[key] = values[0]
        else:
            differing.append(key)
    return differing, constant


def show(value: object) -> str:
    if value is MISSING:
        return "(absent)"
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, list | dict | bool) or value is None else str(value)


def gate_sentence(run: Run) -> str:
    """What registration decided for this run, in one line."""
    record = run.registration
    if not record:
        return "no gate record"
    if record.get("passed") is False:
        blocking = [r for r in record.get("reasons") or [] if "FAIL" in str(r)] or record.get("reasons") or []
        return "refused by the gate" + (f": {'; '.join(map(str, blocking))}" if blocking else "")
    version, stage = record.get("version"), record.get("stage")
    text = f"registered as v{version}" + (f" ({stage})" if stage else "")
    held_back = record.get("held_back") or []
    if stage == "staging" and held_back:
        text += f", not promoted: {held_back[0]}"
    return text


def _tie_margin(run: Run) -> float | None:
    """`register.champion.min_improvement.<task>`: a smaller gain is not worth promoting, so call it a tie."""
    value = run.params.get(f"register.champion.min_improvement.{run.task}")
    return float(value) if isinstance(value, int | float) else None


def verdict(ranked: Sequence[Run], metric: str, lower: bool, best_by: dict[str, str]) -> tuple[list[str], Run | None]:
    best = ranked[0] if ranked and metric in ranked[0].test else None
    if best is None:
        return [f"No run has a test {metric}: nothing to rank (see the notes below)."], None
    others = [r for r in ranked[1:] if metric in r.test]
    reference = next((r for r in others if r.source in ("commit", "workspace")), others[0] if others else None)
    value = best.test[metric]
    lines = [f"Best: {best.name}, test {metric} = {value:.4f}" + (" (lower is better)" if lower else "")]
    if reference is None:
        lines[0] += "."
    else:
        gain = (reference.test[metric] - value) if lower else (value - reference.test[metric])
        lines[0] += f", {gain:+.4f} better than {reference.name} ({reference.test[metric]:.4f})."
        changed = [
            f"{k} {show(reference.params.get(k, MISSING))} → {show(best.params.get(k, MISSING))}"
            for k in sorted(set(best.params) | set(reference.params))
            if not _same(best.params.get(k, MISSING), reference.params.get(k, MISSING))
        ]
        lines.append(
            f"What differs from {reference.name}: "
            + ("; ".join(changed) if changed else "no params (same config)")
            + "."
        )
    if len(others) >= 1:
        runner_up = others[0]
        margin = abs(runner_up.test[metric] - value)
        tie = _tie_margin(best)
        if tie is not None and margin < tie:
            lines.append(
                f"The margin over {runner_up.name} ({margin:.4f}) is below register.champion.min_improvement "
                f"({tie:g}): treat them as tied."
            )
    also = sorted(m for m, name in best_by.items() if name == best.name and m != metric)
    behind = sorted(m for m, name in best_by.items() if name != best.name and m != metric)
    if also or behind:
        parts = ([f"also best on {', '.join(also)}"] if also else []) + (
            [f"not best on {', '.join(f'{m} ({best_by[m]})' for m in behind)}"] if behind else []
        )
        lines.append(f"{best.name} is " + "; ".join(parts) + ".")
    lines.append(f"Gate: {gate_sentence(best)}.")
    return lines, reference


def compare(runs: Sequence[Run]) -> Comparison:
    metric, lower = primary_metric(runs)
    ranked = rank(runs, metric, lower)
    names = [metric] + sorted({m for r in runs for m in r.test} - {metric})
    best_by = {}
    for m in names:
        values = [(r.name, r.test[m]) for r in ranked if m in r.test]  # ties go to the higher-ranked run
        if len({v for _, v in values}) > 1:
            best = min(v for _, v in values) if m in LOWER_IS_BETTER else max(v for _, v in values)
            best_by[m] = next(name for name, v in values if v == best)
    differing, constant = params_diff(runs)
    lines, reference = verdict(ranked, metric, lower, best_by)
    warnings = []
    datasets = sorted({r.dataset for r in runs if r.dataset})
    if len(datasets) > 1:
        warnings.append(f"The runs are on different datasets ({', '.join(datasets)}): their metrics do not compare.")
    failed = [r.name for r in runs if r.failed]
    if failed:
        warnings.append(f"Failed runs (no outputs): {', '.join(failed)}.")
    unmeasured = [r.name for r in runs if not r.failed and metric not in r.test]
    if unmeasured:
        warnings.append(f"No test {metric} for: {', '.join(unmeasured)}.")
    return Comparison(ranked, metric, lower, names, best_by, differing, constant, reference, lines, warnings)
