"""inspect_table's first look: row numbers are ids, leaks are found for every task, codes keep their zeros."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabml.core.params import load_params
from tabml.data.column_types import infer_column
from tabml.data.inspect_table import main, suggest
from tabml.data.tables import read_table
from tests.workspace import EXAMPLE_PARAMS


@pytest.fixture
def p():  # type: ignore[no-untyped-def]
    return load_params(EXAMPLE_PARAMS).preprocess


def sorted_regression(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    y = np.sort(rng.normal(50, 10, n))  # a file sorted by its target
    return pd.DataFrame({
        "rownames": np.arange(1, n + 1),
        "noise": rng.normal(size=n),
        "price_copy": y * 2 + 1,
        "city": rng.choice(["a", "b", "c"], n),
        "y": y,
    })  # fmt: skip


def test_a_row_number_column_is_the_id_and_a_regression_leak_is_flagged(p) -> None:  # type: ignore[no-untyped-def]
    out = suggest(sorted_regression(), Path("sorted.csv"), "y", p)
    assert out.task == "regression" and out.id_column == "rownames"
    assert out.drop_columns == ["price_copy"] and out.notes["price_copy"].startswith("LIKELY LEAK")
    assert not out.notes["noise"].startswith("LIKELY LEAK") and not out.notes["city"].startswith("LIKELY LEAK")


def test_a_shuffled_row_number_is_still_an_identifier(p) -> None:  # type: ignore[no-untyped-def]
    shuffled = pd.Series(np.random.default_rng(1).permutation(np.arange(1, 301)))
    decision = infer_column("n", shuffled, p)
    assert decision.kind == "drop" and "row number" in decision.reason
    assert infer_column("age", pd.Series(np.random.default_rng(2).integers(18, 70, 300)), p).kind == "numeric"


def test_zip_codes_keep_their_leading_zeros_and_very_many_levels_are_text(tmp_path: Path, p) -> None:  # type: ignore[no-untyped-def]
    zips = [f"{z:05d}" for z in np.random.default_rng(3).integers(500, 99999, 300)]
    (tmp_path / "t.csv").write_text("zip,y\n" + "".join(f"{z},{i % 2}\n" for i, z in enumerate(zips)))
    frame = read_table(tmp_path / "t.csv")
    assert frame["zip"].tolist() == zips
    assert infer_column("zip", frame["zip"], p).kind == "categorical"
    words = pd.Series([f"w{i % (2 * p.text_levels_threshold)}" for i in range(3 * p.text_levels_threshold)])
    decision = infer_column("words", words, p)
    assert decision.kind == "drop" and "over preprocess.text_levels_threshold" in decision.reason


def test_ordered_categoricals_are_reported_in_order(p) -> None:  # type: ignore[no-untyped-def]
    sizes = pd.Series(pd.Categorical(["S", "M", "L", "M"] * 50, categories=["S", "M", "L"], ordered=True))
    assert infer_column("size", sizes, p).reason == "ordered categorical (S < M < L)"


def test_the_cli_prints_why_for_each_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sorted_regression().to_csv(tmp_path / "sorted.csv", index=False)
    assert main([str(tmp_path / "sorted.csv"), "--target", "y", "--params", str(EXAMPLE_PARAMS)]) == 0
    out = capsys.readouterr().out
    assert "id_column: rownames" in out and "#   noise: numeric: numeric values" in out
