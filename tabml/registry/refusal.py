"""What would let a refused model through: the exact params.yaml settings, each with what it means."""

from __future__ import annotations

import math

from tabml.core.metric_names import LOWER_IS_BETTER, improvement
from tabml.core.params import RegisterParams, TaskType
from tabml.registry.gate import Candidate, GateDecision


def _threshold_settings(decision: GateDecision, task: TaskType) -> list[str]:
    out = []
    for t in decision.thresholds:
        if t.passed or t.value is None or math.isnan(t.value):
            continue
        bound = math.ceil(t.value * 1e4) / 1e4 if t.metric in LOWER_IS_BETTER else math.floor(t.value * 1e4) / 1e4
        out.append(f"register.thresholds.{task}.{t.metric}: {bound:g} (accepts {t.metric} {t.value:.4f})")
    return out


def _baseline_settings(candidate: Candidate, decision: GateDecision, p: RegisterParams) -> list[str]:
    out: list[str] = []
    metric, value = decision.primary_metric, decision.value
    if value is None:
        return out
    for name, tolerance in p.baselines.items():
        base = candidate.baselines.get(name, {}).get(metric)
        if base is None or math.isnan(float(base)) or base == 0:
            continue
        gain = improvement(metric, value, float(base))
        if gain > -tolerance * abs(float(base)):
            continue
        needed = math.floor(-gain / abs(float(base)) * 1e4) / 1e4 + 1e-4
        out.append(
            f"register.baselines.{name}: {needed:.4f} (accepts a model whose {metric} trails the {name} baseline "
            f"by up to {needed:.2%} of it)"
        )
    return out


def settings_that_pass(candidate: Candidate, decision: GateDecision, task: TaskType, p: RegisterParams) -> list[str]:
    """Each params.yaml line that would have let this model be registered."""
    from tabml.registry.fallback import lost_to_linear

    settings = _threshold_settings(decision, task) + _baseline_settings(candidate, decision, p)
    if lost_to_linear(decision):
        settings.insert(0, "register.linear_fallback: true (registers a linear model of the same inputs instead)")
    return settings


def refusal_todo(candidate: Candidate, decision: GateDecision, task: TaskType, p: RegisterParams) -> str:
    settings = settings_that_pass(candidate, decision, task, p)
    if not settings:
        return "improve the model (features, train params), or change register.thresholds / register.baselines"
    return "improve the model, or set in params.yaml " + "; or ".join(settings)
