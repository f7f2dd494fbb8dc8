"""Issue 9 quality goal: the default model, untuned, against LightGBM (default settings) and a linear model
on the same split: within 0.01 AUROC (binary), 0.01 accuracy (multiclass), 3% RMSE (regression), and at least
as good as linear. Tables: the example credit table and scikit-learn's bundled breast cancer, wine, diabetes.

Run: `python -m bench.quality`. Each table runs through the real pipeline (dvc repro up to evaluate).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tabml.core.env import quiet_telemetry
from tabml.data.preprocessing import SplitArrays
from tabml.data.processed import load_split, split_path
from tests.workspace import EXAMPLE_TABLE, commit_all, copy_pipeline, init_repo, run

PROJECT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    name: str
    task: str
    target: str
    positive_class: str | None
    load: Callable[[], pd.DataFrame]


def sklearn_frame(loader: Callable[..., object], target: str, labels: list[str] | None) -> pd.DataFrame:
    bunch = loader(as_frame=True)
    frame = bunch.frame.rename(columns={"target": target})  # type: ignore[attr-defined]
    if labels is not None:
        frame[target] = np.asarray(labels)[frame[target].to_numpy()]
    return frame


def cases() -> list[Case]:
    from sklearn import datasets

    return [
        Case("credit", "binary", "Status", "bad", lambda: pd.read_csv(EXAMPLE_TABLE)),
        Case(
            "breast-cancer",
            "binary",
            "diagnosis",
            "malignant",
            lambda: sklearn_frame(datasets.load_breast_cancer, "diagnosis", ["malignant", "benign"]),
        ),
        Case(
            "wine",
            "multiclass",
            "cultivar",
            None,
            lambda: sklearn_frame(datasets.load_wine, "cultivar", ["class_0", "class_1", "class_2"]),
        ),
        Case(
            "diabetes",
            "regression",
            "progression",
            None,
            lambda: sklearn_frame(datasets.load_diabetes, "progression", None),
        ),
    ]


def features(a: SplitArrays, n_levels: list[int], one_hot: bool) -> np.ndarray:
    if not one_hot:
        return np.column_stack([a.x_num, a.x_cat]).astype(np.float64)
    blocks = [a.x_num] + [np.eye(k)[a.x_cat[:, i]] for i, k in enumerate(n_levels)]
    return np.column_stack(blocks)


def baselines(processed: Path, task: str) -> dict[str, float]:
    """LightGBM (defaults, native categoricals) and a linear model on the pipeline's own split."""
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    train, test = (load_split(split_path(processed, s)) for s in ("train", "test"))
    state = json.loads((processed / "preprocess_state.json").read_text())
    n_levels = [len(c["levels"]) + 1 for c in state["categorical"]]
    n_num = train.x_num.shape[1]
    cat_idx = list(range(n_num, n_num + train.x_cat.shape[1]))
    x_tree, x_tree_test = features(train, n_levels, False), features(test, n_levels, False)
    x_lin, x_lin_test = features(train, n_levels, True), features(test, n_levels, True)
    if task == "regression":
        tree = lgb.LGBMRegressor(verbose=-1).fit(x_tree, train.y, categorical_feature=cat_idx)
        linear = RidgeCV().fit(x_lin, train.y)
        score = lambda m, x: float(np.sqrt(mean_squared_error(test.y, m.predict(x))))  # noqa: E731
    elif task == "binary":
        tree = lgb.LGBMClassifier(verbose=-1).fit(x_tree, train.y, categorical_feature=cat_idx)
        linear = LogisticRegression(max_iter=5000).fit(x_lin, train.y)
        score = lambda m, x: float(roc_auc_score(test.y, m.predict_proba(x)[:, 1]))  # noqa: E731
    else:
        tree = lgb.LGBMClassifier(verbose=-1).fit(x_tree, train.y, categorical_feature=cat_idx)
        linear = LogisticRegression(max_iter=5000).fit(x_lin, train.y)
        score = lambda m, x: float(accuracy_score(test.y, m.predict(x)))  # noqa: E731
    return {"lightgbm": score(tree, x_tree_test), "linear": score(linear, x_lin_test)}


def run_case(case: Case, tmp: Path) -> dict[str, float]:
    root = init_repo(copy_pipeline(PROJECT, tmp / case.name), tmp / f"{case.name}-remote")
    case.load().to_csv(root / "data/landing/table.csv", index=False)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"].update(
        name=case.name,
        path="data/landing/table.csv",
        target=case.target,
        task=case.task,
        positive_class=case.positive_class,
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_all(root, case.name)
    run(sys.executable, "-m", "dvc", "repro", "evaluate", cwd=root)
    metrics = json.loads((root / "reports/metrics.json").read_text())["test"]
    metric = {"binary": "auroc", "multiclass": "accuracy", "regression": "rmse"}[case.task]
    return {"metric": metric, "model": metrics[metric], **baselines(root / "data/processed", case.task)}


def verdict(task: str, model: float, lgbm: float, linear: float) -> str:
    if task == "regression":
        close, beats_linear = model <= lgbm * 1.03, model <= linear * 1.0001
    else:
        close, beats_linear = model >= lgbm - 0.01, model >= linear - 1e-4
    return ("ok" if close else "behind LightGBM") + (", >= linear" if beats_linear else ", below linear")


def main() -> None:
    quiet_telemetry()
    print(f"{'table':<14} {'metric':<9} {'tabml':>8} {'LightGBM':>9} {'linear':>8}  verdict")
    with tempfile.TemporaryDirectory(prefix="tabml-quality-") as tmp:
        for case in cases():
            r = run_case(case, Path(tmp))
            v = verdict(case.task, r["model"], r["lightgbm"], r["linear"])
            print(
                f"{case.name:<14} {r['metric']:<9} {r['model']:8.4f} {r['lightgbm']:9.4f} {r['linear']:8.4f}  {v}",
                flush=True,
            )


if __name__ == "__main__":
    main()
