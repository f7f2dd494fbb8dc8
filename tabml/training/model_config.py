"""What a network is built from: `ModelConfig` (saved as model_config.json beside the weights) and the sizing
rules every kind of network shares. No torch here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

# What model_config.json files written before these fields existed were built with (they then lived in code).
LEGACY_CONFIG = {
    "category_embedding_max": 32,
    "periodic_frequencies": 16,
    "periodic_sigma": 1.0,
    "token_dim": 64,
    "transformer_blocks": 3,
    "attention_heads": 8,
    "clip_columns": [],  # their preprocessing state clipped the robust view itself
    "input_clip": 5.0,
    "task": None,
    "ensemble_size": 1,
    "ple_columns": [],
    "ple_bins": [],
    "wide": False,
    "linear_columns": [],
}


class ModelConfig(BaseModel):
    """Everything needed to rebuild the network before loading its weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["tabm", "mlp", "embedding_mlp", "ft_transformer", "linear"]  # linear: the gate's fallback
    n_numeric: int
    cardinalities: list[int]  # per categorical column, including code 0 (missing / other)
    hidden_sizes: list[int]
    dropout: float
    embedding_dim: int
    output_dim: int
    category_embedding_max: int
    periodic_frequencies: int  # embedding_mlp
    periodic_sigma: float  # embedding_mlp
    token_dim: int  # ft_transformer
    transformer_blocks: int  # ft_transformer
    attention_heads: int  # ft_transformer
    # mlp / embedding_mlp / ft_transformer: x_num columns clamped to +-input_clip inside the network (the robust
    # views: new preprocessing states leave them unclipped, see tabml.data.preprocessing.PreprocessState.clip).
    clip_columns: list[int]
    input_clip: float
    # tabm only
    task: Literal["binary", "multiclass", "regression"] | None  # how member outputs are averaged
    ensemble_size: int  # k sub-networks sharing the MLP weights (TabM-mini, Gorishniy et al. 2025)
    ple_columns: list[int]  # x_num columns (robust scale, unclipped) given piecewise-linear embeddings
    ple_bins: list[list[float]]  # per PLE column: its bin edges (train quantiles, increasing)
    wide: bool  # a linear path on the robust views beside the ensemble
    linear_columns: list[int]  # x_num column added linearly to each PLE column's embedding (its rank view)

    @model_validator(mode="before")
    @classmethod
    def _legacy_fields(cls, raw: object) -> object:
        """Configs of packages registered before a field existed hold the value then fixed in code."""
        return {**LEGACY_CONFIG, **raw} if isinstance(raw, dict) else raw


def category_embedding_dim(cardinality: int, cap: int) -> int:
    """Rule of thumb: grows with the log of the level count, never above `cap`."""
    return max(2, min(cap, int(round(1.6 * cardinality**0.56))))
