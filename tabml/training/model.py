"""Tabular networks (plain `nn.Module`s) and their safe save/load (safetensors + JSON)."""

from __future__ import annotations

import math

import torch
from torch import nn

from tabml.training.model_config import ModelConfig, category_embedding_dim
from tabml.training.tabm import TabM, combine_members


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
    or, with `ft_transformer`, an `FTTransformer` over feature tokens; or, with `tabm`, a `TabM` ensemble; or, with
    `linear`, a linear model of the same inputs (fitted by tabml.evaluation.linear_model, never trained here)."""

    clip_index: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("clip_index", torch.tensor(config.clip_columns, dtype=torch.long), persistent=False)
        if config.kind == "tabm":
            if config.task is None:
                raise ValueError("a tabm config needs its task (how the members' outputs are averaged)")
            self.tabm = TabM(config)
            return
        if config.kind == "ft_transformer":
            self.transformer = FTTransformer(config)
            return
        if config.kind == "linear":  # logits = W x_num + one weight row per category level + b
            self.linear = nn.Linear(config.n_numeric, config.output_dim)
            self.levels = nn.ModuleList(nn.Embedding(card, config.output_dim) for card in config.cardinalities)
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

    def members(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """tabm: every member's output (batch, k, out); other kinds: the output as one member."""
        if self.config.kind == "tabm":
            return self.tabm(x_num, x_cat)
        return self(x_num, x_cat)[:, None, :]

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        if self.config.kind == "tabm":
            return combine_members(self.tabm(x_num, x_cat), self.config.task)  # type: ignore[arg-type]
        if self.clip_index.numel():
            x_num = x_num.clone()
            x_num[:, self.clip_index] = x_num[:, self.clip_index].clamp(-self.config.input_clip, self.config.input_clip)
        if self.config.kind == "ft_transformer":
            return self.transformer(x_num, x_cat)
        if self.config.kind == "linear":
            logits = self.linear(x_num)
            for i, emb in enumerate(self.levels):
                logits = logits + emb(x_cat[:, i])
            return logits
        parts = [self.numeric(x_num)] if self.config.n_numeric else []
        parts += [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        if not parts:
            parts = [torch.zeros(x_num.shape[0], 1, device=x_num.device)]
        inputs = torch.cat(parts, dim=1)
        return self.mlp(inputs) + self.wide(inputs)
