"""Fit-on-train feature encoding stored as JSON: quantile-normal numerics, top-level category codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer, model_validator
from scipy.special import ndtri

from tabml.core.params import PreprocessParams, TaskType
from tabml.data.column_types import ColumnDecision, datetime_from_text, numeric_from_text
from tabml.data.target import TargetEncoding
from tabml.data.text_values import as_text as as_text  # re-exported (serving, baselines)
from tabml.data.text_values import category_codes, level_counts

DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour", "epoch_days")
LEGACY_CLIP = 5.0  # states written before the networks clamped their own inputs clipped the robust view here


@dataclass(frozen=True)
class SplitArrays:
    """Model inputs of one split: standardised numerics, category codes (0 = missing/other), target."""

    x_num: np.ndarray  # float32 (n, n_numeric)
    x_cat: np.ndarray  # int64 (n, n_categorical)
    y: np.ndarray  # int64 class index, or float32 target in the file's units (regression)

    def __len__(self) -> int:
        return int(self.y.shape[0])


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputColumn(Frozen):
    name: str
    kind: Literal["numeric", "categorical", "boolean", "datetime"]


class NumericFeature(Frozen):
    """One numeric column as two model inputs (quantile-normal rank and clipped robust scale), plus a missing flag.

    The rank view tames heavy tails; the scaled view keeps distances, which small tables need.
    """

    name: str
    source: str
    part: str | None = None
    fill: float
    quantiles: list[float]
    center: float
    scale: float
    missing_indicator: bool
    # part "ordinal": an ordered categorical's levels, lowest first; the column is its ordinal code 0..K-1 (missing
    # or unseen: NaN, then filled and flagged like any missing number); serving encodes it through the scorer
    order: list[str] | None = None

    @model_serializer(mode="wrap")
    def _no_order_unless_ordinal(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        """States without ordinals are written as before (older code still reads them)."""
        out: dict[str, object] = handler(self)
        if self.order is None:
            out.pop("order", None)
        return out


class CategoricalFeature(Frozen):
    """Codes 1..K for `levels`; 0 is missing, rare or unseen."""

    name: str
    levels: list[str]


class PreprocessState(Frozen):
    task: TaskType
    target: str
    labels: list[str] | None
    target_mean: float
    target_std: float
    id_column: str | None
    input_schema: list[InputColumn]
    numeric: list[NumericFeature]
    categorical: list[CategoricalFeature]
    # The robust view's clip at transform time, None for new states: a long tail stays linear for the networks that
    # can use it (tabm's piecewise-linear embeddings); the others clamp it themselves (ModelConfig.clip_columns,
    # train.input_clip), which gives them the inputs they had when the state clipped. Older states clipped at 5.
    clip: float | None

    @model_validator(mode="before")
    @classmethod
    def _legacy_fields(cls, raw: object) -> object:
        return {"clip": LEGACY_CLIP, **raw} if isinstance(raw, dict) else raw

    @model_validator(mode="after")
    def _labels_fit_the_task(self) -> PreprocessState:
        n = len(self.labels or [])
        if (self.task == "binary" and n != 2) or (self.task == "multiclass" and n < 2):
            raise ValueError(
                f"a {self.task} task needs {'exactly' if self.task == 'binary' else 'at least'} two labels, "
                f"got {self.labels}"
            )
        return self

    @property
    def cardinalities(self) -> list[int]:
        return [len(c.levels) + 1 for c in self.categorical]

    @property
    def output_dim(self) -> int:
        return len(self.labels) if self.task == "multiclass" and self.labels else 1


# ---- column coercion: raw values -> float or text, the same at fit and transform time ----


def as_float(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype("float64").to_numpy(na_value=np.nan)
    return numeric_from_text(values).astype("float64").to_numpy(na_value=np.nan)


def datetime_part(values: pd.Series, part: str) -> np.ndarray:
    stamps = values if pd.api.types.is_datetime64_any_dtype(values) else datetime_from_text(values)
    stamps = pd.to_datetime(stamps, utc=True)
    if part == "epoch_days":
        days = (stamps - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(days=1)
        return days.astype("float64").to_numpy(na_value=np.nan)
    attribute = {"dayofweek": "day_of_week"}.get(part, part)  # the part keeps its name in saved states
    return getattr(stamps.dt, attribute).astype("float64").to_numpy(na_value=np.nan)


def numeric_source(frame: pd.DataFrame, feature: NumericFeature) -> np.ndarray:
    values = frame[feature.source]
    if feature.order is not None:
        return ordinal_codes(values, feature.order)
    return datetime_part(values, feature.part) if feature.part else as_float(values)


def is_ordered(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.CategoricalDtype) and bool(values.dtype.ordered)


def ordinal_codes(values: pd.Series, order: list[str]) -> np.ndarray:
    """Each value's position in `order` as a float; NaN for missing and unseen values (numerics' missing handling)."""
    codes = category_codes(values, "categorical", order).astype(np.float64)
    codes[codes < 0] = np.nan
    return codes


# ---- fit ----


def fit_quantiles(values: np.ndarray, n_quantiles: int) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [0.0, 1.0]
    return [float(q) for q in np.quantile(finite, np.linspace(0, 1, n_quantiles))]


def fit_numeric(name: str, values: np.ndarray, source: str, part: str | None, n_quantiles: int) -> NumericFeature:
    finite = values[np.isfinite(values)]
    center = float(np.median(finite)) if finite.size else 0.0
    spread = float(np.subtract(*np.percentile(finite, [75, 25]))) if finite.size else 0.0
    scale = spread / 1.349 or (float(np.std(finite)) if finite.size else 0.0) or 1.0
    return NumericFeature(
        name=name,
        source=source,
        part=part,
        fill=center,
        quantiles=fit_quantiles(values, n_quantiles),
        center=center,
        scale=scale,
        missing_indicator=bool((~np.isfinite(values)).any()),
    )


def fit_levels(counts: pd.Series, p: PreprocessParams) -> list[str]:
    """The most frequent levels (`level_counts`) seen at least `min_level_count` times, at most `max_levels`."""
    counts = counts[counts >= p.min_level_count].head(p.max_levels)
    return sorted(map(str, counts.index))


def fit_state(
    train: pd.DataFrame,
    decisions: list[ColumnDecision],
    target: TargetEncoding,
    p: PreprocessParams,
    id_column: str | None,
) -> PreprocessState:
    """Learn every encoding from the training split only."""
    numeric: list[NumericFeature] = []
    categorical: list[CategoricalFeature] = []
    schema: list[InputColumn] = []
    for d in decisions:
        if d.kind == "drop":
            continue
        schema.append(InputColumn(name=d.name, kind=d.kind))
        values = train[d.name]
        if d.kind == "numeric":
            numeric.append(fit_numeric(d.name, as_float(values), d.name, None, p.n_quantiles))
        elif d.kind == "categorical" and is_ordered(values):
            order = [str(c) for c in as_text(pd.Series(values.cat.categories), "categorical")]
            feature = fit_numeric(d.name, ordinal_codes(values, order), d.name, "ordinal", p.n_quantiles)
            numeric.append(feature.model_copy(update={"order": order}))
        elif d.kind == "datetime":
            for part in DATETIME_PARTS:
                raw = datetime_part(values, part)
                if np.nanstd(raw) > 0 if np.isfinite(raw).any() else False:
                    numeric.append(fit_numeric(f"{d.name}.{part}", raw, d.name, part, p.n_quantiles))
        else:
            categorical.append(CategoricalFeature(name=d.name, levels=fit_levels(level_counts(values, d.kind), p)))
    return PreprocessState(
        task=target.task,
        target=target.column,
        labels=target.labels,
        target_mean=target.mean,
        target_std=target.std,
        id_column=id_column,
        input_schema=schema,
        numeric=numeric,
        categorical=categorical,
        clip=None,
    )


# ---- transform ----


def quantile_normal(values: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """Map through the training quantiles to a standard normal (ties averaged, as scikit-learn does)."""
    q = np.asarray(quantiles)
    ranks = np.linspace(0, 1, q.size)
    forward = np.interp(values, q, ranks)
    backward = -np.interp(-values, -q[::-1], -ranks[::-1])
    return ndtri(np.clip(0.5 * (forward + backward), 1e-7, 1 - 1e-7))


def transform_numeric(frame: pd.DataFrame, state: PreprocessState) -> np.ndarray:
    """float32 (n, numeric_width): filled column by column, so only one source column is ever held in float64."""
    out = np.empty((len(frame), numeric_width(state)), dtype=np.float32)
    position = 0
    for feature in state.numeric:
        raw = numeric_source(frame, feature)
        missing = ~np.isfinite(raw)
        filled = np.where(missing, feature.fill, raw)
        out[:, position] = quantile_normal(filled, feature.quantiles)
        robust = (filled - feature.center) / feature.scale
        out[:, position + 1] = robust if state.clip is None else np.clip(robust, -state.clip, state.clip)
        position += 2
        if feature.missing_indicator:
            out[:, position] = missing
            position += 1
    return out


def transform_categorical(frame: pd.DataFrame, state: PreprocessState) -> np.ndarray:
    kinds = {c.name: c.kind for c in state.input_schema}
    out = np.empty((len(frame), len(state.categorical)), dtype=np.int64)
    for i, c in enumerate(state.categorical):
        out[:, i] = category_codes(frame[c.name], kinds[c.name], c.levels) + 1
    return out


def numeric_width(state: PreprocessState) -> int:
    return sum(3 if f.missing_indicator else 2 for f in state.numeric)


def numeric_columns(state: PreprocessState) -> dict[str, list[int]]:
    """Positions in x_num of each view: `rank` (quantile-normal), `robust` (median/IQR scale), `missing` flags;
    rank[i] and robust[i] are the same source column."""
    views: dict[str, list[int]] = {"rank": [], "robust": [], "missing": []}
    position = 0
    for feature in state.numeric:
        views["rank"].append(position)
        views["robust"].append(position + 1)
        position += 2
        if feature.missing_indicator:
            views["missing"].append(position)
            position += 1
    return views


def robust_bins(state: PreprocessState, n_bins: int) -> list[list[float]]:
    """Per numeric column: at most `n_bins` quantile bins of its training values, as edges in robust-view units."""
    bins = []
    for feature in state.numeric:
        q = np.asarray(feature.quantiles, dtype=np.float64)
        picked = q[np.unique(np.round(np.linspace(0, q.size - 1, n_bins + 1)).astype(int))]
        edges = np.unique((picked - feature.center) / feature.scale)
        bins.append([float(e) for e in edges])
    return bins


def transform(frame: pd.DataFrame, state: PreprocessState, y: np.ndarray) -> SplitArrays:
    """Pure: encode a frame with a fitted state; does not modify the frame."""
    return SplitArrays(x_num=transform_numeric(frame, state), x_cat=transform_categorical(frame, state), y=y)
