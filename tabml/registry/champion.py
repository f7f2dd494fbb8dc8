"""Champion/challenger evidence: the new model and the production model scored on the same frozen test rows.

Each model transforms the raw test rows with its own preprocess_state.json (the champion may have been
fitted with other encodings, or other code), so neither is scored on the other's arrays. The numbers go to
the pure decision in tabml.gate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tabml.core.params import ChampionParams
from tabml.evaluation.bootstrap import Scored, paired_bootstrap
from tabml.evaluation.metrics import UndefinedMetricError, task_metrics
from tabml.evaluation.scorer import Scorer
from tabml.evaluation.slices import Groups
from tabml.registry.gate import ChampionEvidence, ChampionUnavailable, SliceComparison
from tabml.registry.package import load_scorer
from tabml.registry.store import load_package, model_dir, read_index


def _metric_or_none(task: str, metric: str, m: Scored, y: np.ndarray, rows: np.ndarray) -> float | None:
    try:
        return task_metrics(task, m.scores[rows], y[rows], m.threshold)[metric]
    except UndefinedMetricError:
        return None


def compare(
    challenger: Scorer,
    champion: Scorer,
    version: int,
    frame: pd.DataFrame,
    metric: str,
    groups: Groups,
    p: ChampionParams,
) -> ChampionEvidence | ChampionUnavailable:
    """Score both models on `frame`, bootstrap the gain in `metric`, and compare them on every slice value."""
    new, old = challenger.state, champion.state
    if old.task != new.task:
        return ChampionUnavailable(version, f"it is a {old.task} model and this one is {new.task}")
    if old.labels != new.labels:
        return ChampionUnavailable(version, f"its labels {old.labels} differ from this model's {new.labels}")
    missing = champion.missing_columns(frame)
    if missing:
        return ChampionUnavailable(version, f"the test rows lack its input columns {missing}")
    y = challenger.target(frame)
    a, b = Scored(challenger.scores(frame), challenger.threshold), Scored(champion.scores(frame), champion.threshold)
    try:
        interval = paired_bootstrap(
            new.task, metric, y, a, b, samples=p.bootstrap_samples, confidence=p.confidence, seed=p.seed
        )
        ours, theirs = (task_metrics(new.task, m.scores, y, m.threshold)[metric] for m in (a, b))
    except (UndefinedMetricError, KeyError) as exc:
        return ChampionUnavailable(version, f"{metric} cannot be compared on these rows: {exc}")
    slices = [
        SliceComparison(
            column,
            value,
            int(rows.size),
            _metric_or_none(new.task, metric, a, y, rows),
            _metric_or_none(new.task, metric, b, y, rows),
        )
        for column, values in groups.items()
        for value, rows in values.items()
    ]
    return ChampionEvidence(version, metric, ours, theirs, interval, slices)


def production_scorer(registry_dir: Path, name: str, key: bytes | None = None) -> tuple[int, Scorer | str] | None:
    """The production version and its scorer (or why it cannot be loaded); None when there is no production.

    A package whose files fail their checksums raises RegistryError: a tampered champion stops the stage.
    """
    entry = read_index(model_dir(registry_dir, name)).in_stage("production")
    if entry is None:
        return None
    package = load_package(registry_dir, name, entry.version, key=key)
    try:
        return entry.version, load_scorer(package)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return entry.version, f"its package cannot be loaded by this code ({first_line})"


def champion_evidence(
    registry_dir: Path,
    name: str,
    challenger: Scorer,
    frame: pd.DataFrame,
    metric: str,
    groups: Groups,
    p: ChampionParams,
    key: bytes | None = None,
) -> ChampionEvidence | ChampionUnavailable | None:
    """None without a production model; otherwise the comparison, or why there can be none."""
    found = production_scorer(registry_dir, name, key)
    if found is None:
        return None
    version, champion = found
    if isinstance(champion, str):
        return ChampionUnavailable(version, champion)
    return compare(challenger, champion, version, frame, metric, groups, p)
