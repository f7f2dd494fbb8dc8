"""TabM-mini (Gorishniy et al., ICLR 2025) with piecewise-linear numeric embeddings (Gorishniy et al., 2022): the
default network. See docs/quality-findings.md for what it was chosen over and the numbers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tabml.training.model_config import ModelConfig, category_embedding_dim


class PiecewiseLinearEmbedding(nn.Module):
    """Numeric value -> piecewise-linear encoding over its training-quantile bins, then a per-feature linear map
    (Gorishniy et al. 2022, "version B" of rtdl_num_embeddings: a linear term plus a zero-initialised
    piecewise-linear one, so training starts from a linear embedding).

    Encoding component j of a value in bin i is 1 for j < i, the position inside the bin for j = i, 0 for j > i.
    The first and last components are not clamped on their outer side: values beyond the training range extend
    linearly, which keeps a long-tailed near-linear relation (delay -> delay) intact instead of saturating.
    The linear term reads `linear_inputs` (the bounded rank view of the same column)."""

    weight: torch.Tensor
    bias: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor

    def __init__(self, bins: list[list[float]], dim: int) -> None:
        super().__init__()
        n_features, n_bins = len(bins), max(1, max((len(b) - 1 for b in bins), default=1))
        weight, bias = torch.zeros(n_features, n_bins), torch.zeros(n_features, n_bins)
        lower, upper = torch.zeros(n_features, n_bins), torch.ones(n_features, n_bins)
        for f, edges in enumerate(bins):
            e = torch.tensor(edges, dtype=torch.float64)
            if e.numel() < 2:  # a constant column: one component, min-max like
                e = torch.tensor([float(edges[0]) if edges else 0.0, (float(edges[0]) if edges else 0.0) + 1.0])
            width = e.diff()
            m = width.numel()
            weight[f, :m] = (1 / width).float()
            bias[f, :m] = (-e[:-1] / width).float()
            lower[f, 0] = -math.inf
            upper[f, m - 1] = math.inf
        for name, value in (("weight", weight), ("bias", bias), ("lower", lower), ("upper", upper)):
            self.register_buffer(name, value)
        bound = 1 / math.sqrt(dim)
        self.linear0 = nn.Parameter(torch.empty(n_features, dim).uniform_(-bound, bound))
        self.bias0 = nn.Parameter(torch.empty(n_features, dim).uniform_(-bound, bound))
        self.linear = nn.Parameter(torch.zeros(n_features, n_bins, dim))

    def forward(self, x: torch.Tensor, linear_inputs: torch.Tensor) -> torch.Tensor:
        encoded = torch.addcmul(self.bias, self.weight, x[..., None])
        encoded = torch.minimum(torch.maximum(encoded, self.lower), self.upper)
        out = torch.einsum("bfn,fnd->bfd", encoded, self.linear)
        return (out + linear_inputs[..., None] * self.linear0 + self.bias0).flatten(1)


class TabM(nn.Module):
    """TabM-mini (Gorishniy et al., ICLR 2025): k sub-networks that share one MLP. Each member sees the input
    scaled elementwise by its own random vector (one random factor per feature, the only non-shared input
    weights), goes through the shared Linear-ReLU-Dropout blocks, and has its own linear head. Trained on the
    mean of the k members' losses; predicts the mean of their predictions (probabilities for classification).

    Numeric columns listed in `ple_columns` get piecewise-linear embeddings, the other numeric columns (missing
    flags) enter as they are, categories through embeddings.
    """

    ple_index: torch.Tensor
    linear_index: torch.Tensor
    plain_index: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.k = k = config.ensemble_size
        ple = set(config.ple_columns) | set(config.linear_columns)
        self.register_buffer("ple_index", torch.tensor(config.ple_columns, dtype=torch.long), persistent=False)
        self.register_buffer("linear_index", torch.tensor(config.linear_columns, dtype=torch.long), persistent=False)
        plain = [i for i in range(config.n_numeric) if i not in ple]
        self.register_buffer("plain_index", torch.tensor(plain, dtype=torch.long), persistent=False)
        self.ple = PiecewiseLinearEmbedding(config.ple_bins, config.embedding_dim) if config.ple_columns else None
        dims = [category_embedding_dim(card, config.category_embedding_max) for card in config.cardinalities]
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, dim) for card, dim in zip(config.cardinalities, dims, strict=True)
        )
        chunks = [config.embedding_dim] * len(config.ple_columns) + [1] * len(plain) + dims
        width = max(1, sum(chunks))
        # One random N(0, 1) factor per member and input feature (TabM's chunked "normal" start scaling).
        scale = torch.randn(k, max(1, len(chunks)))
        if chunks:
            scale = torch.repeat_interleave(scale, torch.tensor(chunks), dim=1)
        self.member_scale = nn.Parameter(scale)
        layers: list[nn.Module] = []
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        self.backbone = nn.Sequential(*layers)
        # Wide path: one linear map of the robust views (unclipped) shared by the members, zero at the start. A
        # long-tailed, near-linear target (arrival delay ~ departure delay) is then as easy as for a ridge.
        n_wide = len(config.ple_columns) if config.wide else 0
        self.wide = nn.Linear(n_wide, config.output_dim) if n_wide else None
        if self.wide is not None:
            nn.init.zeros_(self.wide.weight)
            nn.init.zeros_(self.wide.bias)
        bound = 1 / math.sqrt(width)
        self.head_weight = nn.Parameter(torch.empty(k, width, config.output_dim).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(torch.empty(k, config.output_dim).uniform_(-bound, bound))

    def inputs(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.ple is not None:
            parts.append(self.ple(x_num[:, self.ple_index], x_num[:, self.linear_index]))
        if self.plain_index.numel():
            parts.append(x_num[:, self.plain_index])
        parts += [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        if not parts:
            return torch.zeros(x_num.shape[0], 1, device=x_num.device)
        return torch.cat(parts, dim=1)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """Every member's output, (batch, k, output_dim)."""
        x = self.inputs(x_num, x_cat)
        x = x[:, None, :] * self.member_scale  # (B, k, D)
        x = self.backbone(x.flatten(0, 1)).unflatten(0, (x_num.shape[0], self.k))
        out = torch.einsum("bkd,kdo->bko", x, self.head_weight) + self.head_bias
        if self.wide is not None:
            out = out + self.wide(x_num[:, self.ple_index])[:, None, :]
        return out


def combine_members(outputs: torch.Tensor, task: str) -> torch.Tensor:
    """(batch, k, out) member outputs -> (batch, out) outputs of the ensemble, in the same conventions as one
    network's: the logit of the mean probability (binary), the log of the mean class probabilities
    (multiclass, softmax gives them back), the mean value (regression)."""
    log_k = math.log(outputs.shape[1])
    if task == "binary":
        log_p = torch.logsumexp(nn.functional.logsigmoid(outputs), dim=1) - log_k
        log_q = torch.logsumexp(nn.functional.logsigmoid(-outputs), dim=1) - log_k
        return log_p - log_q
    if task == "multiclass":
        return torch.logsumexp(torch.log_softmax(outputs, dim=-1), dim=1) - log_k
    return outputs.mean(dim=1)
