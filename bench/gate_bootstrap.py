"""The champion gate's paired bootstrap: block-vectorised metrics against the per-resample torchmetrics loop.

Both compute the interval from the same draws (checked here: equal to 1e-5); the ratio is what the register
stage saves per champion comparison. Run: `python -m bench.gate_bootstrap`.
"""

from __future__ import annotations

import time

import numpy as np

from tabml.core.env import quiet_telemetry
from tabml.evaluation.bootstrap import PairedInterval, Scored, paired_bootstrap

CASES = [  # (task, metric, rows): the credit test split's size, and a larger table's
    ("binary", "auroc", 891),
    ("binary", "auroc", 20_000),
    ("regression", "rmse", 20_000),
]
SAMPLES = 300


def data(task: str, n: int) -> tuple[np.ndarray, Scored, Scored]:
    rng = np.random.default_rng(123)
    if task == "binary":
        y = (rng.random(n) < 0.3).astype(np.int64)
        a = np.clip(0.3 + 0.35 * y + rng.normal(0, 0.2, n), 0, 1)
        b = np.clip(0.3 + 0.30 * y + rng.normal(0, 0.2, n), 0, 1)
        return y, Scored(a, 0.5), Scored(b, 0.5)
    y = rng.normal(50, 10, n).astype(np.float32)
    return y, Scored(y + rng.normal(0, 4, n), None), Scored(y + rng.normal(0, 5, n), None)


def timed_bootstrap(task: str, metric: str, n: int, vectorise: bool) -> tuple[float, PairedInterval]:
    y, a, b = data(task, n)
    start = time.perf_counter()
    interval = paired_bootstrap(task, metric, y, a, b, samples=SAMPLES, confidence=0.95, seed=0, vectorise=vectorise)
    return time.perf_counter() - start, interval


def main() -> None:
    quiet_telemetry()
    print(f"{'task':<11} {'metric':<7} {'rows':>7} {'resamples':>9} {'loop s':>8} {'vectorised s':>13} {'ratio':>7}")
    for task, metric, n in CASES:
        loop_s, loop = timed_bootstrap(task, metric, n, vectorise=False)
        fast_s, fast = timed_bootstrap(task, metric, n, vectorise=True)
        assert abs(fast.low - loop.low) < 1e-5 and abs(fast.high - loop.high) < 1e-5, (fast, loop)
        print(f"{task:<11} {metric:<7} {n:>7} {SAMPLES:>9} {loop_s:>8.2f} {fast_s:>13.3f} {loop_s / fast_s:>6.0f}x")


if __name__ == "__main__":
    main()
