"""Ranking, params diff and the verdict: which run is best, and why."""

from __future__ import annotations

from dataclasses import replace

from tabml.report.compare import compare, gate_sentence, params_diff, primary_metric, rank
from tests.tabml.report.examples import binary_run, grid


def test_runs_are_ranked_best_first_on_the_primary_metric() -> None:
    result = compare(grid())
    assert result.primary == "auroc" and not result.lower_is_better
    assert [r.name for r in result.runs] == ["wide", "fast-lr", "main"]
    assert result.metric_names[0] == "auroc"


def test_error_metrics_rank_lowest_first() -> None:
    runs = [replace(r, params={**r.params, "register.primary_metric": "log_loss"}) for r in grid()]
    metric, lower = primary_metric(runs)
    assert (metric, lower) == ("log_loss", True)
    assert [r.name for r in rank(runs, metric, lower)] == ["fast-lr", "main", "wide"]


def test_runs_without_the_metric_go_last_in_their_order() -> None:
    runs = grid()
    empty = replace(runs[0], name="broken", metrics={})
    assert [r.name for r in rank([empty, *runs], "auroc", False)][-1] == "broken"


def test_params_diff_splits_differing_from_shared() -> None:
    differing, constant = params_diff(grid())
    assert differing == ["train.hidden_sizes", "train.lr"]
    assert constant["data.name"] == "credit" and "train.lr" not in constant


def test_a_param_present_in_one_run_only_counts_as_differing() -> None:
    runs = grid()
    runs[1] = replace(runs[1], params={**runs[1].params, "train.new_knob": 3})
    assert "train.new_knob" in params_diff(runs)[0]


def test_verdict_names_the_best_run_its_margin_and_what_changed_against_the_baseline() -> None:
    result = compare(grid())
    first, changes = result.verdict[0], result.verdict[1]
    assert first.startswith("Best: wide, test auroc = 0.8610") and "+0.0310 better than main (0.8300)" in first
    assert result.reference is not None and result.reference.name == "main"
    assert changes == "What differs from main: train.hidden_sizes [32, 16] → [64, 32]; train.lr 0.001 → 0.003."
    assert any("not best on log_loss (fast-lr)" in line for line in result.verdict)
    assert result.verdict[-1] == "Gate: registered as v1 (production)."


def test_a_margin_below_the_promotion_threshold_is_called_a_tie() -> None:
    runs = [binary_run("a", 0.8501, 0.001), binary_run("b", 0.8500, 0.003)]
    lines = compare(runs).verdict
    assert any("below register.champion.min_improvement (0.002): treat them as tied" in line for line in lines)


def test_without_any_measured_run_the_verdict_says_so() -> None:
    runs = [replace(r, metrics={}) for r in grid()]
    result = compare(runs)
    assert result.verdict == ["No run has a test auroc: nothing to rank (see the notes below)."]
    assert result.warnings == ["No test auroc for: main, wide, fast-lr."]


def test_runs_on_different_datasets_are_flagged() -> None:
    runs = grid()
    runs[2] = replace(runs[2], params={**runs[2].params, "data.name": "churn"})
    assert any("different datasets (churn, credit)" in w for w in compare(runs).warnings)


def test_gate_sentence_for_refused_staged_and_unrecorded_runs() -> None:
    refused = binary_run(
        "r", 0.55, 0.001, registration={"passed": False, "reasons": ["auroc=0.55 < minimum 0.6: FAILED"]}
    )
    staged = binary_run(
        "s",
        0.85,
        0.001,
        registration={"passed": True, "version": 4, "stage": "staging", "held_back": ["gain 0.001 < 0.002"]},
    )
    assert gate_sentence(refused) == "refused by the gate: auroc=0.55 < minimum 0.6: FAILED"
    assert gate_sentence(staged) == "registered as v4 (staging), not promoted: gain 0.001 < 0.002"
    assert gate_sentence(replace(staged, registration=None)) == "no gate record"
