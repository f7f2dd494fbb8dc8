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
