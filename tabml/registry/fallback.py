"""`register.linear_fallback`: when the network does not beat the linear baseline, the register stage can
register a linear model of the same inputs instead (tabml.evaluation.linear_model), as the challenger; it then
meets the rest of the gate like any model. Its package holds its own weights, test metrics and threshold; the
evaluation figures and slices describe the network, so they are left out of it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tabml.core.params import Params, RegisterParams
from tabml.data.processed import read_split, read_state
from tabml.evaluation.outputs import SLICES_FILE, figure_paths
from tabml.registry.gate import Check, GateDecision
from tabml.registry.package import METRICS_FILE, package_sources
from tabml.training.trained_model import HISTORY_FILE, load_model, model_files, save_model

LINEAR = "linear"
METRICS_NAME = "metrics.json"


def lost_to_linear(decision: GateDecision) -> bool:
    """The only failed registration check is the linear baseline."""
    failed = [c.name for c in decision.checks if c.tier == "registration" and not c.passed]
    return failed == [f"baseline {LINEAR}"]


def without_linear_baseline(p: RegisterParams) -> RegisterParams:
    """The gate for the linear model itself: every check but the one it is."""
    return p.model_copy(update={"baselines": {k: v for k, v in p.baselines.items() if k != LINEAR}})


def fit_fallback(params: Params, metrics_doc: dict, folder: Path) -> dict:
    """Fit the linear model, write it as a model folder in `folder`; its metrics document (evaluate's schema)."""
    from tabml.evaluation.linear_model import fit_linear_model, val_threshold
    from tabml.evaluation.metrics import task_metrics
    from tabml.training.trained_model import score_arrays, write_history

    processed = params.preprocess.out_dir
    state = read_state(processed)
    train, val, test = (read_split(processed, s) for s in ("train", "val", "test"))
    network = load_model(params.train.out_dir).config
    n_classes = len(state.labels or [])
    net = fit_linear_model(
        train, network, state.task, n_classes, params.evaluate.linear_baseline_l2, state.target_mean, state.target_std
    )
    threshold = val_threshold(net, val) if state.task == "binary" else None
    scores = score_arrays(net, test, state.task, state.target_mean, state.target_std)
    test_metrics = task_metrics(state.task, scores, test.y, threshold)
    save_model(net, folder)
    write_history([], folder / HISTORY_FILE)
    document = {
        **metrics_doc,
        "model": LINEAR,
        "test": test_metrics,
        "threshold": threshold,
        "network_test": metrics_doc.get("test"),
    }
    (folder / METRICS_NAME).write_text(json.dumps(document, indent=2) + "\n")
    return document


def fallback_sources(params: Params, folder: Path) -> dict[str, Path]:
    """The package of the linear model: its own model files and metrics; no network figures or slices."""
    network_only = {SLICES_FILE, *(figure.name for figure in figure_paths(params.evaluate))}
    sources = {k: v for k, v in package_sources(params).items() if k not in network_only}
    return {**sources, **model_files(folder), METRICS_FILE: folder / METRICS_NAME}


def note_fallback(decision: GateDecision, network: GateDecision) -> GateDecision:
    """The linear model's decision, with the network's refusal as its first check."""
    lost = next(c.reason for c in network.checks if c.name == f"baseline {LINEAR}")
    line = f"the network lost to the linear baseline ({lost}); registered the linear model instead"
    check = Check("registration", "linear fallback", True, line + " (register.linear_fallback: true)")
    return replace(decision, checks=[check, *decision.checks], reasons=[check.reason, *decision.reasons])
