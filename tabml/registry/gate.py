"""The registration gate: one pure decision over numbers the register stage has already measured.

Three tiers, in order:
1. registration: the thresholds of `register.thresholds` hold and the model beats every baseline of
   `register.baselines`; otherwise nothing is registered.
2. promotion: with no production model, a registered model becomes production. Otherwise it must beat
   production on the same frozen test rows: primary-metric gain >= `register.champion.min_improvement`,
   paired bootstrap interval of the gain above zero, and no slice value dropping more than its tolerance.
3. a registered model that fails promotion is kept as `staging`, for a person to review and promote.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from tabml.core.params import RegisterParams, TaskType

if TYPE_CHECKING:
    from tabml.evaluation.bootstrap import PairedInterval  # torch-free import of the gate
from tabml.core.metric_names import LOWER_IS_BETTER, PRIMARY_METRIC, improvement

Outcome = Literal["production", "staging"]
Metrics = Mapping[str, float | None]


@dataclass(frozen=True)
class ThresholdCheck:
    """One `register.thresholds` entry compared with the measured value."""

    metric: str
    bound: float
    kind: Literal["min", "max"]  # a minimum (higher is better) or a maximum (error metrics)
    value: float | None
    passed: bool
    reason: str


@dataclass(frozen=True)
class SliceComparison:
    """Both models' primary metric on the rows of one slice value (None: undefined there, e.g. one class)."""

    column: str
    value: str
    n: int
    challenger: float | None
    champion: float | None


@dataclass(frozen=True)
class ChampionEvidence:
    """The challenger and the production model scored on the same frozen test rows."""

    version: int
    metric: str
    challenger: float
    champion: float
    interval: PairedInterval
    slices: list[SliceComparison] = field(default_factory=list)


@dataclass(frozen=True)
class ChampionUnavailable:
    """A production model exists but cannot be scored on these rows (other labels, other columns, old format)."""

    version: int
    reason: str


@dataclass(frozen=True)
class Candidate:
    """What evaluate measured for the new model: its test metrics and each baseline's."""

    metrics: Metrics
    baselines: Mapping[str, Metrics] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    tier: Literal["registration", "promotion"]  # what a failure blocks
    name: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateDecision:
    passed: bool  # registered at all
    stage: Outcome | None
    primary_metric: str
    value: float | None
    champion_version: int | None = None
    reasons: list[str] = field(default_factory=list)  # every check, passed or not
    blocking: list[str] = field(default_factory=list)  # why it was not registered; empty when passed
    held_back: list[str] = field(default_factory=list)  # why a registered model was not promoted
    checks: list[Check] = field(default_factory=list)
    thresholds: list[ThresholdCheck] = field(default_factory=list)
    champion: ChampionEvidence | None = None

    def report(self) -> dict[str, object]:
        """The gate report (reports/gate.json, gate_report.json in the package)."""
        return {
            "registered": self.passed,
            "stage": self.stage,
            "primary_metric": self.primary_metric,
            "value": self.value,
            "champion_version": self.champion_version,
            "blocking": self.blocking,
            "held_back": self.held_back,
            "checks": [asdict(c) for c in self.checks],
            "champion": asdict(self.champion) if self.champion else None,
        }


def primary_metric_for(task: TaskType, params: RegisterParams) -> str:
    return params.primary_metric or PRIMARY_METRIC[task]


def _available(metrics: Metrics) -> str:
    return ", ".join(sorted(k for k, v in metrics.items() if v is not None)) or "none"


def _measured(metrics: Metrics, metric: str) -> float | None:
    raw = metrics.get(metric)
    return None if raw is None or math.isnan(float(raw)) else float(raw)


def check_threshold(metrics: Metrics, metric: str, bound: float) -> ThresholdCheck:
    """Compare one metric with its bound: a minimum, or a maximum for error metrics."""
    kind: Literal["min", "max"] = "max" if metric in LOWER_IS_BETTER else "min"
    raw = metrics.get(metric)
    if raw is None:  # absent, or null in metrics.json
        reason = f"{metric}: not in metrics.json (available: {_available(metrics)})"
        return ThresholdCheck(metric, bound, kind, None, False, reason)
    value = float(raw)
    if math.isnan(value):
        return ThresholdCheck(metric, bound, kind, value, False, f"{metric}=nan: not a number, cannot pass {bound}")
    passed = value <= bound if kind == "max" else value >= bound
    op = ("<=" if passed else ">") if kind == "max" else (">=" if passed else "<")
    word = "maximum" if kind == "max" else "minimum"
    reason = f"{metric}={value:.4g} {op} {word} {bound:g}: {'ok' if passed else 'FAILED'}"
    return ThresholdCheck(metric, bound, kind, value, passed, reason)


def check_baseline(candidate: Candidate, name: str, tolerance: float, metric: str, value: float) -> Check:
    """Beat the baseline: gain > -tolerance x |baseline| (tolerance 0: strictly better)."""
    base = _measured(candidate.baselines.get(name, {}), metric)
    if base is None:
        reason = f"baseline {name}: its {metric} is not in metrics.json; re-run evaluate (dvc repro evaluate)"
        return Check("registration", f"baseline {name}", False, reason)
    gain = improvement(metric, value, base)
    passed = gain > -tolerance * abs(base)
    allowed = f", tie tolerance {tolerance:g} relative" if tolerance else ""
    verdict = "ok" if passed else "FAILED: the model does not beat it"
    reason = f"baseline {name}: {metric} {value:.4f} vs {base:.4f} (gain {gain:+.4f}{allowed}): {verdict}"
    return Check("registration", f"baseline {name}", passed, reason)


def champion_checks(evidence: ChampionEvidence, task: TaskType, p: RegisterParams) -> list[Check]:
    """Gain with margin, a bootstrap interval above zero, and no slice regressing beyond its tolerance."""
    c, ci, m = p.champion, evidence.interval, evidence.metric
    margin = c.min_improvement.get(task, 0.0)
    versus = f"production v{evidence.version}"
    gain_ok = ci.improvement >= margin
    checks = [
        Check(
            "promotion",
            "improvement",
            gain_ok,
            f"gain over {versus}: {m} {evidence.challenger:.4f} vs {evidence.champion:.4f} = {ci.improvement:+.4f} "
            f"(required >= {margin:g}): {'ok' if gain_ok else 'not enough'}",
        ),
        Check(
            "promotion",
            "significance",
            ci.low > 0,
            f"{ci.confidence:.0%} paired bootstrap interval of the gain [{ci.low:+.4f}, {ci.high:+.4f}] "
            f"({ci.samples} resamples{f', {ci.undefined} undefined dropped' if ci.undefined else ''}): "
            + ("above zero: ok" if ci.low > 0 else "includes zero or below: not significant"),
        ),
    ]
    for s in evidence.slices:
        name = f"slice {s.column}={s.value}"
        if s.challenger is None or s.champion is None:
            note = f"{name} (n={s.n}): {m} undefined on these rows, not compared"
            checks.append(Check("promotion", name, True, note))
            continue
        tolerance = c.slice_tolerances.get(s.column, c.slice_tolerance)
        change = improvement(m, s.challenger, s.champion)
        ok = -change <= tolerance
        checks.append(
            Check(
                "promotion",
                name,
                ok,
                f"{name} (n={s.n}): {m} {s.challenger:.4f} vs {versus} {s.champion:.4f} ({change:+.4f}; "
                f"drops up to {tolerance:g} allowed): {'ok' if ok else 'REGRESSED'}",
            )
        )
    return checks


def gate(
    candidate: Candidate,
    champion: ChampionEvidence | ChampionUnavailable | None,
    task: TaskType,
    p: RegisterParams,
) -> GateDecision:
    """Register or not, and production or staging; every check is kept with its reason."""
    primary = primary_metric_for(task, p)
    thresholds = [check_threshold(candidate.metrics, m, b) for m, b in p.thresholds.get(task, {}).items()]
    checks = [Check("registration", f"threshold {t.metric}", t.passed, t.reason) for t in thresholds]
    value = _measured(candidate.metrics, primary)
    if value is None:
        what = f"primary metric {primary}: not measured (available: {_available(candidate.metrics)})"
        checks.append(Check("registration", "primary metric", False, what))
    else:
        checks += [check_baseline(candidate, name, tol, primary, value) for name, tol in p.baselines.items()]
    notes = [] if thresholds else [f"no thresholds for task {task}: nothing to check"]
    blocking = [c.reason for c in checks if not c.passed]
    if blocking:
        reasons = [c.reason for c in checks] + notes
        return GateDecision(False, None, primary, value, None, reasons, blocking, [], checks, thresholds)

    evidence = champion if isinstance(champion, ChampionEvidence) else None
    if champion is None:
        notes.append("no production model yet: this version becomes production")
    elif isinstance(champion, ChampionUnavailable):
        checks.append(
            Check(
                "promotion",
                "champion",
                False,
                f"production v{champion.version} could not be scored on the test rows ({champion.reason}); "
                "review both and promote by hand if this one is better",
            )
        )
    else:
        checks += champion_checks(champion, task, p)
    held_back = [c.reason for c in checks if c.tier == "promotion" and not c.passed]
    version = champion.version if champion is not None else None
    return GateDecision(
        passed=True,
        stage="staging" if held_back else "production",
        primary_metric=primary,
        value=value,
        champion_version=version,
        reasons=[c.reason for c in checks] + notes,
        blocking=[],
        held_back=held_back,
        checks=checks,
        thresholds=thresholds,
        champion=evidence,
    )
