"""Real-shaped generated tables (with signal, missing values and messy columns) for tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _features(n: int, rng: np.random.Generator, n_levels: int = 12) -> tuple[pd.DataFrame, np.ndarray]:
    """Mixed numeric and categorical features and the latent score they carry."""
    income = rng.lognormal(8, 0.6, n)
    age = rng.integers(18, 80, n).astype(float)
    region = rng.choice([f"r{i:02d}" for i in range(n_levels)], n)
    contract = rng.choice(["monthly", "yearly", "two-year"], n, p=[0.5, 0.3, 0.2])
    tenure = rng.gamma(2.0, 10.0, n)
    region_effect = {f"r{i:02d}": e for i, e in enumerate(rng.normal(0, 0.6, n_levels))}
    score = (
        0.8 * (np.log(income) - 8) / 0.6
        - 0.02 * (age - 45)
        + 0.04 * tenure
        + np.vectorize(region_effect.get)(region)
        + np.where(contract == "monthly", -0.7, 0.4)
    )
    frame = pd.DataFrame(
        {"income": income.round(2), "age": age, "region": region, "contract": contract, "tenure": tenure.round(1)}
    )
    frame.loc[rng.random(n) < 0.05, "income"] = np.nan
    frame.loc[rng.random(n) < 0.03, "contract"] = None
    return frame, score


def multiclass_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Three string labels cut from a noisy latent score."""
    rng = np.random.default_rng(seed)
    frame, score = _features(n, rng)
    noisy = score + rng.normal(0, 0.6, n)
    cuts = np.quantile(noisy, [0.4, 0.75])
    frame["segment"] = np.select([noisy < cuts[0], noisy < cuts[1]], ["basic", "plus"], "premium")
    return frame


def regression_table(n: int = 1500, seed: int = 0, missing_target: float = 0.05) -> pd.DataFrame:
    """A positive numeric target with some rows missing it (common in regression tables)."""
    rng = np.random.default_rng(seed)
    frame, score = _features(n, rng)
    frame["spend"] = (100 * np.exp(0.3 * score) + rng.normal(0, 10, n)).round(2)
    frame.loc[rng.random(n) < missing_target, "spend"] = np.nan
    return frame


def binary_table(n: int = 1500, seed: int = 0, positive_share: float = 0.3) -> pd.DataFrame:
    """A yes/no target whose positive share is set by a threshold on the latent score."""
    rng = np.random.default_rng(seed)
    frame, score = _features(n, rng)
    noisy = score + rng.normal(0, 0.8, n)
    frame["churn"] = np.where(noisy < np.quantile(noisy, positive_share), "yes", "no")
    return frame


def messy_table(
    n: int = 3000, seed: int = 0, positive_share: float = 0.03, labels: tuple[str, str] = ("No", "Yes")
) -> pd.DataFrame:
    """The columns real exports have: codes, yes/no, dates, numbers as text, 4,000-level strings, junk, ids."""
    rng = np.random.default_rng(seed)
    frame, score = _features(n, rng)
    merchants = np.array([f"merchant-{i:04d}" for i in range(4000)])
    frame["merchant"] = merchants[np.minimum(rng.zipf(1.3, n), 4000) - 1]
    frame["area_code"] = rng.choice([408, 415, 510], n)
    frame["zip"] = rng.choice(["02134", "10001", "94105", "07030", "60601"], n)
    frame["intl_plan"] = rng.choice(["yes", "no"], n, p=[0.1, 0.9])
    frame["signup_date"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")).astype(
        str
    )
    frame["balance"] = [f"{v:,.2f}" for v in rng.lognormal(7, 1, n)]
    frame["source_system"] = "crm"
    frame["legacy_flag"] = None
    frame["notes"] = [f"customer {i} called about order {rng.integers(10**6)} and asked for a refund" for i in range(n)]
    frame["customer_id"] = [f"C{i:07d}" for i in range(n)]
    noisy = score + np.where(frame["intl_plan"] == "yes", 1.0, 0.0) + rng.normal(0, 0.8, n)
    frame["churned"] = np.where(noisy > np.quantile(noisy, 1 - positive_share), labels[1], labels[0])
    frame.loc[rng.random(n) < 0.01, "churned"] = None  # unlabelled rows: dropped and counted
    return frame


def scale_table(n: int = 350_000, seed: int = 0) -> pd.DataFrame:
    """20 columns with missing values and one 4,000-level string column (the issue-9 scale shape)."""
    rng = np.random.default_rng(seed)
    frame, score = _features(n, rng)
    merchants = np.array([f"merchant-{i:04d}" for i in range(4000)])
    frame["merchant"] = merchants[rng.integers(0, 4000, n)]
    for i in range(10):
        column = rng.normal(0, 1, n)
        score = score + 0.1 * column
        column[rng.random(n) < 0.02] = np.nan
        frame[f"x{i}"] = column
    frame["channel"] = rng.choice(["web", "store", "phone", "partner"], n)
    frame["plan"] = rng.choice(["a", "b", "c", "d", "e", "f"], n)
    frame["tenure_months"] = rng.integers(0, 120, n)
    noisy = score + rng.normal(0, 1.0, n)
    frame["defaulted"] = np.where(noisy > np.quantile(noisy, 0.8), "yes", "no")
    return frame
