"""Issue 17 quality benchmark: the pipeline's default model against LightGBM (default settings) and a linear
model, both fitted on the RAW columns, on the pipeline's own train/val/test rows, over 3 split seeds.

For every table of bench/quality_tables.py and every split seed (`preprocess.seed`), the real pipeline runs in
a fresh git + DVC workspace (the pipeline copied, params.yaml edited, `dvc repro evaluate`). Then, on the rows
the pipeline used (data/processed/splits.npz indexes the accepted snapshot):
- LightGBM, default hyper-parameters (100 trees, lr 0.1, 31 leaves), text columns as pandas `category`, NaN as
  is, fitted on the train rows with the val rows as eval_set for early stopping (50 rounds);
- linear: median-impute + standardise numerics, one-hot text columns (unknown levels ignored), then
  LogisticRegression / Ridge at scikit-learn defaults (max_iter 5000).
All three are scored on the same test rows with one metric: AUROC (binary), accuracy (multiclass), RMSE
(regression). The interval is a paired bootstrap (rows resampled within each seed's test rows, the same rows
for both models, the metric averaged over seeds) of ours - best, where best is the baseline with the better
mean. win: the interval is entirely on the better side of 0, loss: entirely on the worse side, else tie.

Run: `python -m bench.quality [--tables a,b] [--seeds 0,1,2] [--label NAME] [--threads 1]`. Results are cached
per table and seed under bench/results/<label>/ (git-ignored): a rerun only runs what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench.quality_tables import BY_NAME, TABLES, QualityTable
from tabml.core.env import quiet_telemetry
from tests.workspace import commit_all, copy_pipeline, init_repo, run

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT / "bench" / "results"
METRIC = {"binary": "auroc", "multiclass": "accuracy", "regression": "rmse"}
HIGHER_IS_BETTER = {"auroc": True, "accuracy": True, "rmse": False}
SEEDS = (0, 1, 2)
BOOTSTRAP = 1000
EARLY_STOPPING_ROUNDS = 50


# ---- metrics (vectorised enough for 1,000 bootstrap resamples of 65k rows) ----


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    from scipy.stats import rankdata

    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def score(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    """pred: P(positive) (auroc), predicted class (accuracy) or value (rmse)."""
    if metric == "auroc":
        return auroc(y, pred)
    if metric == "accuracy":
        return float(np.mean(y == pred))
    return float(np.sqrt(np.mean((y.astype(np.float64) - pred) ** 2)))


def paired_bootstrap(
    metric: str, per_seed: list[tuple[np.ndarray, np.ndarray, np.ndarray]], samples: int = BOOTSTRAP
) -> tuple[float, float]:
    """95% interval of mean-over-seeds metric(ours) - metric(other); (y, ours, other) per seed."""
    rng = np.random.default_rng(0)
    diffs = np.zeros(samples)
    for y, ours, other in per_seed:
        n = len(y)
        for b in range(samples):
            idx = rng.integers(0, n, n)
            diffs[b] += score(metric, y[idx], ours[idx]) - score(metric, y[idx], other[idx])
    diffs /= len(per_seed)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


# ---- the raw columns the baselines see ----


def raw_features(frame: pd.DataFrame, table: QualityTable) -> pd.DataFrame:
    x = frame.drop(columns=[table.target, *table.drop_columns], errors="ignore")
    out = {}
    for column in x.columns:
        values = x[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            out[column] = values.astype("float64")
        else:
            out[column] = values.astype("string").astype(object).where(values.notna(), None)
    return pd.DataFrame(out, index=x.index)


def text_columns(x: pd.DataFrame) -> list[str]:
    return [c for c in x.columns if x[c].dtype == object]


def encode_target(y: pd.Series, table: QualityTable, classes: list[str] | None) -> np.ndarray:
    if table.task == "regression":
        return pd.to_numeric(y).to_numpy(np.float64)
    labels = y.astype("string").str.strip()
    if table.task == "binary":
        return (labels == table.positive_class).to_numpy().astype(np.int64)
    assert classes is not None
    return pd.Categorical(labels, categories=classes).codes.astype(np.int64)


def lightgbm_baseline(
    x: dict[str, pd.DataFrame], y: dict[str, np.ndarray], task: str, threads: int
) -> tuple[np.ndarray, float, int]:
    """Default LightGBM on raw columns: categories fixed from the train rows (unseen -> NaN), val for early stop."""
    import lightgbm as lgb

    cats = text_columns(x["train"])
    frames = {}
    for split, frame in x.items():
        frame = frame.copy()
        for c in cats:
            levels = sorted(x["train"][c].dropna().unique())
            frame[c] = pd.Categorical(frame[c], categories=levels)
        frames[split] = frame
    kwargs = {"n_jobs": threads, "verbose": -1, "random_state": 0}
    model = lgb.LGBMRegressor(**kwargs) if task == "regression" else lgb.LGBMClassifier(**kwargs)
    start = time.perf_counter()
    with warnings.catch_warnings():  # lightgbm 4.7 renames eval_set to eval_X/eval_y; older ones lack those
        warnings.filterwarnings("ignore", message=".*eval_set.* is deprecated")
        model.fit(
            frames["train"],
            y["train"],
            eval_set=[(frames["val"], y["val"])],
            callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
        )
    seconds = time.perf_counter() - start
    pred = predictions(model, frames["test"], task)
    return pred, seconds, int(model.best_iteration_ or model.n_estimators)


def linear_baseline(x: dict[str, pd.DataFrame], y: dict[str, np.ndarray], task: str) -> tuple[np.ndarray, float]:
    """One-hot (unknown ignored) + standardise + median-impute, then sklearn-default logistic / ridge."""
    from sklearn.compose import ColumnTransformer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = text_columns(x["train"])
    nums = [c for c in x["train"].columns if c not in cats]
    encode = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                cats,
            ),
        ]
    )
    head = Ridge() if task == "regression" else LogisticRegression(max_iter=5000)
    model = make_pipeline(encode, head)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x["train"], y["train"])
    seconds = time.perf_counter() - start
    return predictions(model, x["test"], task), seconds


def predictions(model: object, x: pd.DataFrame, task: str) -> np.ndarray:
    if task == "regression":
        return np.asarray(model.predict(x), dtype=np.float64)  # type: ignore[attr-defined]
    proba = model.predict_proba(x)  # type: ignore[attr-defined]
    return proba[:, 1] if task == "binary" else np.argmax(proba, axis=1)


# ---- one table, one seed ----


def land(table: QualityTable, root: Path, seed: int) -> None:
    frame = table.load()
    frame.to_parquet(root / "data/landing/table.parquet", index=False)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"].update(
        name=table.name,
        path="data/landing/table.parquet",
        target=table.target,
        task=table.task,
        positive_class=table.positive_class,
        drop_columns=list(table.drop_columns),
    )
    params["preprocess"]["seed"] = seed
    params["tracking"]["mode"] = "disabled"  # no W&B files: nothing that changes the model
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_one(table: QualityTable, seed: int, project: Path, threads: int) -> tuple[dict, dict[str, np.ndarray]]:
    with tempfile.TemporaryDirectory(prefix=f"tabml-quality-{table.name}-") as tmp:
        root = init_repo(copy_pipeline(project, Path(tmp) / "ws"), Path(tmp) / "remote")
        land(table, root, seed)
        commit_all(root, f"{table.name} seed {seed}")
        start = time.perf_counter()
        run(sys.executable, "-m", "dvc", "repro", "evaluate", cwd=root)
        pipeline_seconds = time.perf_counter() - start
        run_info = json.loads((root / "models/train/run_info.json").read_text())
        state = json.loads((root / "data/processed/preprocess_state.json").read_text())
        with np.load(root / "data/processed/splits.npz") as splits:
            rows = {s: splits[f"{s}_rows"] for s in ("train", "val", "test")}
        with np.load(root / "reports/evaluate/test_predictions.npz") as saved:
            ours_raw = {k: saved[k] for k in saved.files}
        accepted = pd.read_parquet(root / "data/snapshot/accepted.parquet")
    # splits.npz positions index the accepted snapshot itself (preprocess maps them back past the rows it
    # dropped for a missing target), in the order of the split arrays.
    classes = state.get("labels") if table.task == "multiclass" else None
    features = raw_features(accepted, table)
    x = {s: features.iloc[r].reset_index(drop=True) for s, r in rows.items()}
    y = {s: encode_target(accepted[table.target].iloc[r], table, classes) for s, r in rows.items()}
    if table.task == "regression":
        ours = ours_raw["y_pred"].astype(np.float64)
    elif table.task == "binary":
        ours = ours_raw["y_proba"].astype(np.float64)
    else:
        ours = ours_raw["y_pred"].astype(np.int64)
    same = (
        np.allclose(ours_raw["y_true"], y["test"], rtol=1e-6)
        if table.task == "regression"
        else np.array_equal(ours_raw["y_true"], y["test"])
    )
    if not same:
        raise RuntimeError(f"{table.name}: the pipeline's test targets do not match the raw test rows")
    lgbm, lgbm_seconds, trees = lightgbm_baseline(x, y, table.task, threads)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        linear, linear_seconds = linear_baseline(x, y, table.task)
    metric = METRIC[table.task]
    result = {
        "table": table.name,
        "seed": seed,
        "metric": metric,
        "rows": {s: int(len(r)) for s, r in rows.items()},
        "ours": score(metric, y["test"], ours),
        "lightgbm": score(metric, y["test"], lgbm),
        "linear": score(metric, y["test"], linear),
        "seconds": {
            "ours_train": float(run_info["seconds"]),
            "pipeline": pipeline_seconds,
            "lightgbm": lgbm_seconds,
            "linear": linear_seconds,
        },
        "ours_epochs": int(run_info["epochs"]),
        "lightgbm_trees": trees,
        "threads": threads,
    }
    return result, {"y": y["test"], "ours": ours, "lightgbm": lgbm, "linear": linear}


def cached(table: QualityTable, seed: int, project: Path, threads: int, out: Path) -> tuple[dict, dict]:
    meta, arrays = out / f"{table.name}-seed{seed}.json", out / f"{table.name}-seed{seed}.npz"
    if meta.exists() and arrays.exists():
        with np.load(arrays) as saved:
            return json.loads(meta.read_text()), {k: saved[k] for k in saved.files}
    result, preds = run_one(table, seed, project, threads)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(arrays, **preds)
    meta.write_text(json.dumps(result, indent=2) + "\n")
    return result, preds


# ---- the table ----


def summarise(table: QualityTable, results: list[dict], preds: list[dict]) -> dict:
    metric = results[0]["metric"]
    higher = HIGHER_IS_BETTER[metric]
    mean = {k: float(np.mean([r[k] for r in results])) for k in ("ours", "lightgbm", "linear")}
    better = max if higher else min
    best = better(("lightgbm", "linear"), key=lambda k: mean[k])
    lo, hi = paired_bootstrap(metric, [(p["y"], p["ours"], p[best]) for p in preds])
    if higher:
        verdict = "win" if lo > 0 else "loss" if hi < 0 else "tie"
        within = mean["ours"] >= mean[best] - 0.005
        beats_lgbm = mean["ours"] > mean["lightgbm"]
    else:
        verdict = "win" if hi < 0 else "loss" if lo > 0 else "tie"
        within = mean["ours"] <= mean[best] * 1.01
        beats_lgbm = mean["ours"] < mean["lightgbm"]
    seconds = {k: float(np.mean([r["seconds"][k] for r in results])) for k in results[0]["seconds"]}
    return {
        "table": table.name,
        "task": table.task,
        "metric": metric,
        "rows": sum(results[0]["rows"].values()),
        "seeds": [r["seed"] for r in results],
        **mean,
        "best": best,
        "interval": (lo, hi),
        "verdict": verdict,
        "within_goal": within,
        "beats_lightgbm": beats_lgbm,
        "seconds": seconds,
        "epochs": float(np.mean([r["ours_epochs"] for r in results])),
    }


def fmt(value: float, metric: str) -> str:
    return f"{value:.4f}" if metric != "rmse" else f"{value:.4g}" if abs(value) >= 1000 else f"{value:.3f}"


def print_report(rows: list[dict], label: str, threads: int) -> None:
    print(
        f"quality bench [{label}]: mean over split seeds; LightGBM = defaults on raw columns (native categoricals, "
        f"NaN), early-stopped on the val rows ({EARLY_STOPPING_ROUNDS} rounds, at most 100 trees); linear = "
        f"median-impute + standardise + one-hot, sklearn-default Logistic/Ridge; {threads} thread(s) each"
    )
    header = (
        f"{'table':<14}{'task':<11}{'rows':>8} {'metric':<9}{'ours':>9}{'LightGBM':>10}{'linear':>10}  "
        f"{'best':<8}{'ours - best [95% CI]':<36}{'verdict':<8}{'goal':<6}{'ep':>5}  train s ours/LGBM/linear"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        m = r["metric"]
        lo, hi = r["interval"]
        diff = r["ours"] - r[r["best"]]
        ci = f"{diff:+.3g} [{lo:+.3g}, {hi:+.3g}]"
        best = "LGBM" if r["best"] == "lightgbm" else "linear"
        s = r["seconds"]
        print(
            f"{r['table']:<14}{r['task']:<11}{r['rows']:>8} {m:<9}{fmt(r['ours'], m):>9}{fmt(r['lightgbm'], m):>10}"
            f"{fmt(r['linear'], m):>10}  {best:<8}{ci:<36}{r['verdict']:<8}{'ok' if r['within_goal'] else 'MISS':<6}"
            f"{r['epochs']:>5.0f}  {s['ours_train']:.1f}/{s['lightgbm']:.1f}/{s['linear']:.1f}"
        )
    wins = sum(r["verdict"] == "win" for r in rows)
    ties = sum(r["verdict"] == "tie" for r in rows)
    losses = sum(r["verdict"] == "loss" for r in rows)
    within = sum(r["within_goal"] for r in rows)
    beats = sum(r["beats_lightgbm"] for r in rows)
    print(f"summary: {wins} wins / {ties} ties / {losses} losses against the best of LightGBM and linear")
    met = within == len(rows) and beats * 2 >= len(rows)
    print(
        f"goal: within tolerance of the best (>= best - 0.005 AUROC/accuracy, <= best x 1.01 RMSE) on "
        f"{within}/{len(rows)} tables; better than LightGBM on {beats}/{len(rows)} (need {-(-len(rows) // 2)}) "
        f"-> {'met' if met else 'NOT met'}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=None, help="comma-separated table names (default: all)")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated preprocess.seed values")
    parser.add_argument("--label", default="current", help="results folder under bench/results/")
    parser.add_argument("--project", type=Path, default=PROJECT, help="the pipeline to copy (default: this one)")
    parser.add_argument("--threads", type=int, default=1, help="threads for our training and for each baseline")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary rows here")
    args = parser.parse_args(argv)
    quiet_telemetry()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # the pipeline's stages inherit it: torch uses this many threads
    os.environ["WANDB_MODE"] = "disabled"
    tables = TABLES if args.tables is None else [BY_NAME[n] for n in args.tables.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    out = RESULTS / args.label
    rows = []
    for table in tables:
        results, preds = [], []
        for seed in seeds:
            start = time.perf_counter()
            result, pred = cached(table, seed, args.project.resolve(), args.threads, out)
            results.append(result)
            preds.append(pred)
            print(
                f"[{table.name} seed {seed}] ours={result['ours']:.4f} lightgbm={result['lightgbm']:.4f} "
                f"linear={result['linear']:.4f} ({time.perf_counter() - start:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
        rows.append(summarise(table, results, preds))
    print_report(rows, args.label, args.threads)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
