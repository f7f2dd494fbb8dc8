"""Small, hand-written runs for the report's tests: two binary experiments and their baseline commit."""

from __future__ import annotations

from typing import Any

from tabml.report.runs import Run


def roc(shift: float) -> list[dict[str, float]]:
    points = [0.0, 0.1, 0.3, 0.6, 1.0]
    return [{"fpr": x, "tpr": min(1.0, x + shift * (1 - x) if x else 0.0)} for x in points]


def pr(level: float) -> list[dict[str, float]]:
    return [{"recall": r, "precision": max(0.3, level - 0.4 * r)} for r in (1.0, 0.75, 0.5, 0.25, 0.0)]


def history(start: float, rate: float, epochs: int = 4) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train_loss": start - rate * e,
            "val_loss": start + 0.02 - rate * e * 0.8,
            "val_auroc": 0.7 + 0.03 * e,
        }
        for e in range(epochs)
    ]


def binary_run(
    name: str,
    auroc: float,
    lr: float,
    *,
    source: str = "experiment",
    log_loss: float = 0.45,
    registration: dict[str, Any] | None = None,
    hidden: list[int] | None = None,
) -> Run:
    params = {
        "data.name": "credit",
        "data.task": "binary",
        "train.lr": lr,
        "train.hidden_sizes": hidden or [32, 16],
        "train.max_epochs": 4,
        "register.primary_metric": None,
        "register.champion.min_improvement.binary": 0.002,
    }
    return Run(
        name=name,
        source=source,  # type: ignore[arg-type]
        rev=f"{abs(hash(name)):040x}"[:40],
        created="2030-01-01T10:00:00",
        params=params,
        metrics={"task": "binary", "n_test": 891, "test": {"auroc": auroc, "log_loss": log_loss, "f1": 0.6}},
        history=history(0.7, 0.05 + lr),
        curves={"roc.json": roc(auroc - 0.5), "precision_recall.json": pr(auroc)},
        registration=registration
        or {"passed": True, "version": 1, "stage": "production", "reasons": [f"auroc={auroc:.4f} >= minimum 0.6: ok"]},
        validation={
            "success": True,
            "rows": 4454,
            "errors": [],
            "warnings": [],
            "data_docs": "reports/validation.html",
        },
        run_info={"wandb_run_id": f"id-{name}"},
    )


def grid() -> list[Run]:
    """A baseline commit and two experiments; `wide` is best on auroc but worse on log_loss."""
    return [
        binary_run("main", 0.830, 0.001, source="commit", log_loss=0.44),
        binary_run("wide", 0.861, 0.003, hidden=[64, 32], log_loss=0.47),
        binary_run("fast-lr", 0.850, 0.01, log_loss=0.43),
    ]
