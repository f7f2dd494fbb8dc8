import numpy as np
import pandas as pd

from tabml.core.params import load_params
from tabml.data.column_types import ColumnDecision
from tabml.data.preprocessing import fit_state, quantile_normal, transform
from tabml.data.processed import load_state, save_state
from tabml.data.target import TargetEncoding
from tests.workspace import EXAMPLE_PARAMS

P = load_params(EXAMPLE_PARAMS).preprocess.model_copy(update={"max_levels": 3, "min_level_count": 2})
ENC = TargetEncoding(task="binary", column="y", labels=["0", "1"])
DECISIONS = [
    ColumnDecision("num", "numeric", ""),
    ColumnDecision("cat", "categorical", ""),
    ColumnDecision("flag", "boolean", ""),
    ColumnDecision("when", "datetime", ""),
]


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "num": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
            "cat": ["a", "a", "b", "b", "c", "c"],
            "flag": ["Yes", "no", "yes", None, "No", "yes"],
            "when": ["2024-01-01", "2024-02-01", "2024-03-05", "2023-01-01", "2022-06-01", "2021-01-01"],
        }
    )


def test_state_round_trips_through_json(tmp_path) -> None:
    state = fit_state(frame(), DECISIONS, ENC, P, None)
    save_state(state, tmp_path)
    assert load_state(tmp_path) == state


def test_transform_is_pure_and_codes_rare_unseen_and_missing_as_zero() -> None:
    train = frame()
    before = train.copy()
    state = fit_state(train, DECISIONS, ENC, P, None)
    new = frame().assign(cat=["a", "unseen", None, "b", "c", "rare"])
    arrays = transform(new, state, np.zeros(6, dtype=np.int64))
    pd.testing.assert_frame_equal(train, before)
    cat = [c.name for c in state.categorical].index("cat")
    assert arrays.x_cat[:, cat].tolist() == [1, 0, 0, 2, 3, 0]  # levels a, b, c; unseen and missing -> 0
    flag = [c.name for c in state.categorical].index("flag")
    assert state.categorical[flag].levels == ["false", "true"]
    assert arrays.x_cat[3, flag] == 0


def test_numeric_missing_gets_an_indicator_and_datetime_expands_to_parts() -> None:
    state = fit_state(frame(), DECISIONS, ENC, P, None)
    num = next(f for f in state.numeric if f.name == "num")
    assert num.missing_indicator and num.fill == 4.0
    assert {f.part for f in state.numeric if f.source == "when"} >= {"year", "month", "epoch_days"}
    arrays = transform(frame(), state, np.zeros(6, dtype=np.int64))
    assert np.isfinite(arrays.x_num).all() and arrays.x_num.dtype == np.float32


def test_quantile_normal_is_monotone_and_centred() -> None:
    values = np.random.default_rng(0).lognormal(size=2000)
    q = np.quantile(values, np.linspace(0, 1, 256)).tolist()
    z = quantile_normal(np.sort(values), q)
    assert np.all(np.diff(z) >= -1e-12)
    assert abs(np.median(z)) < 0.05


def graded(order: list[str]) -> pd.Series:
    values = ["low", "mid", "high", "mid", "low", None, "high", "mid"]
    return pd.Series(pd.Categorical(values, categories=order, ordered=True))


def test_an_ordered_categorical_is_encoded_as_its_ordinal_code_in_category_order(tmp_path) -> None:
    train = pd.DataFrame({"grade": graded(["low", "mid", "high"])})
    state = fit_state(train, [ColumnDecision("grade", "categorical", "")], ENC, P, None)
    assert state.categorical == [] and [(f.name, f.part, f.order) for f in state.numeric] == [
        ("grade", "ordinal", ["low", "mid", "high"])
    ]
    save_state(state, tmp_path)
    assert load_state(tmp_path) == state  # recorded in preprocess_state.json, which predict and serve load
    rows = pd.DataFrame({"grade": ["high", "low", "mid", "unheard", None]})  # a CSV's plain text reads alike
    x = transform(rows, state, np.zeros(5)).x_num
    rank, missing = x[:, 0], x[:, 2]
    assert rank[1] < rank[2] < rank[0]  # low < mid < high
    assert missing.tolist() == [0, 0, 0, 1, 1]  # unseen and missing: the numbers' missing handling
    assert x[3, 0] == x[4, 0]


def test_the_reversed_order_in_the_file_gives_reversed_codes() -> None:
    from tabml.data.preprocessing import ordinal_codes

    forward, backward = graded(["low", "mid", "high"]), graded(["high", "mid", "low"])
    state = fit_state(pd.DataFrame({"grade": backward}), [ColumnDecision("grade", "categorical", "")], ENC, P, None)
    assert state.numeric[0].order == ["high", "mid", "low"]
    codes_forward = ordinal_codes(forward, ["low", "mid", "high"])
    codes_backward = ordinal_codes(backward, state.numeric[0].order or [])
    present = np.isfinite(codes_forward)
    assert np.array_equal(codes_backward[present], 2 - codes_forward[present])
    assert codes_forward[present].tolist() == [0, 1, 2, 1, 0, 2, 1]
