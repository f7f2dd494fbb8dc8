"""Tabular networks (plain `nn.Module`s) and their safe save/load (safetensors + JSON)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

# What model_config.json files written before these fields existed were built with (they then lived in code).
LEGACY_CONFIG = {
    "category_embedding_max": 32,
    "periodic_frequencies": 16,
    "periodic_sigma": 1.0,
    "token_dim": 64,
    "transformer_blocks": 3,
    "attention_heads": 8,
}


class ModelConfig(BaseModel):
    """Everything needed to rebuild the network before loading its weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["mlp", "embedding_mlp", "ft_transformer"]
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

    @model_validator(mode="before")
    @classmethod
    def _legacy_fields(cls, raw: object) -> object:
        """Configs of packages registered before a field existed hold the value then fixed in code."""
        return {**LEGACY_CONFIG, **raw} if isinstance(raw, dict) else raw


def category_embedding_dim(cardinality: int, cap: int) -> int:
    """Rule of thumb: grows with the log of the level count, never above `cap`."""
    return max(2, min(cap, int(round(1.6 * cardinality**0.56))))


class PeriodicNumericEmbedding(nn.Module):
    """Numeric feature -> [sin, cos] of learned frequencies, then a linear layer (Gorishniy et al., 2022)."""

    def __init__(self, n_features: int, dim: int, n_frequencies: int, sigma: float) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_features, n_frequencies) * sigma)
        self.linear = nn.Parameter(torch.empty(n_features, 2 * n_frequencies, dim))
        self.bias = nn.Parameter(torch.zeros(n_features, dim))
        nn.init.uniform_(self.linear, -1 / math.sqrt(2 * n_frequencies), 1 / math.sqrt(2 * n_frequencies))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * self.frequencies[None] * x[..., None]
        periodic = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        out = torch.einsum("bfp,fpd->bfd", periodic, self.linear) + self.bias
        return torch.relu(out).flatten(1)


class FTTransformer(nn.Module):
    """FT-Transformer (Gorishniy et al., 2021): every feature becomes a token (a numeric value scales a learned
    vector, a category looks one up), a [CLS] token is prepended, pre-norm Transformer blocks mix them, and the
    prediction is read from [CLS]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.token_dim
        bound = 1 / math.sqrt(d)
        self.numeric_weight = nn.Parameter(torch.empty(config.n_numeric, d).uniform_(-bound, bound))
        self.numeric_bias = nn.Parameter(torch.empty(config.n_numeric, d).uniform_(-bound, bound))
        self.categories = nn.ModuleList(nn.Embedding(card, d) for card in config.cardinalities)
        self.category_bias = nn.Parameter(torch.empty(len(config.cardinalities), d).uniform_(-bound, bound))
        self.cls = nn.Parameter(torch.empty(1, 1, d).uniform_(-bound, bound))
        block = nn.TransformerEncoderLayer(
            d,
            config.attention_heads,
            dim_feedforward=d * 4 // 3,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, config.transformer_blocks, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, config.output_dim))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        tokens = [self.cls.expand(x_num.shape[0], -1, -1), x_num[..., None] * self.numeric_weight + self.numeric_bias]
        if self.categories:
            embedded = torch.stack([emb(x_cat[:, i]) for i, emb in enumerate(self.categories)], dim=1)
            tokens.append(embedded + self.category_bias)
        return self.head(self.blocks(torch.cat(tokens, dim=1))[:, 0])


class TabularNet(nn.Module):
    """Categoricals through embeddings, numerics raw (`mlp`) or embedded (`embedding_mlp`), then MLP + linear;
    or, with `ft_transformer`, an `FTTransformer` over feature tokens."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        if config.kind == "ft_transformer":
            self.transformer = FTTransformer(config)
            return
        dims = [category_embedding_dim(card, config.category_embedding_max) for card in config.cardinalities]
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, dim) for card, dim in zip(config.cardinalities, dims, strict=True)
        )
        cat_width = sum(dims)
        self.numeric: nn.Module
        if config.kind == "embedding_mlp" and config.n_numeric > 0:
            self.numeric = PeriodicNumericEmbedding(
                config.n_numeric, config.embedding_dim, config.periodic_frequencies, config.periodic_sigma
            )
            num_width = config.n_numeric * config.embedding_dim
        else:
            self.numeric = nn.Identity()
            num_width = config.n_numeric
        layers: list[nn.Module] = []
        width = max(1, num_width + cat_width)
        # Wide & deep: a linear path beside the MLP, so the net is never worse than a linear model to fit.
        self.wide = nn.Linear(width, config.output_dim)
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, config.output_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        if self.config.kind == "ft_transformer":
            return self.transformer(x_num, x_cat)
        parts = [self.numeric(x_num)] if self.config.n_numeric else []
        parts += [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        if not parts:
            parts = [torch.zeros(x_num.shape[0], 1, device=x_num.device)]
        inputs = torch.cat(parts, dim=1)
        return self.mlp(inputs) + self.wide(inputs)
