"""Typed view of `params.yaml`: one model per section, unknown keys are errors, every value comes from the file.

The pipeline sections (data ... register) live here; tracking and orchestration in tabml.core.ops_params.
Checks that need more than one section (a slice tolerance naming a column that is not a slice column, a
threshold on a metric the task does not report) run when the whole file is loaded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from tabml.core.data_params import MODEL_NAME_PATTERN, ColumnKind, DataParams, PredictParams, Section, TaskType

__all__ = ["MODEL_NAME_PATTERN", "ColumnKind", "DataParams", "PredictParams", "Section", "TaskType"]
from tabml.core.metric_names import TASK_METRICS
from tabml.core.ops_params import LauncherParams, MonitorParams, OrchestrationParams, ServeParams, TrackingParams

DEFAULT_PARAMS = Path("params.yaml")
SUBKEY = re.compile(r"^[a-z_][\w.]*: ")


class IngestParams(Section):
    snapshot: Path
    report: Path


class DriftParams(Section):
    """Population stability index per column against the reference profile (tabml/drift.py)."""

    threshold: float = Field(gt=0)
    action: Literal["block", "warn"]
    bins: int = Field(ge=2)
    min_rows: int = Field(ge=1)
    columns: dict[str, Literal["block", "warn", "ignore"]] = {}


class ValidateParams(Section):
    report: Path
    data_docs: Path
    quarantine_dir: Path
    reference_dir: Path
    min_rows: int = Field(ge=1)
    max_null_fraction_margin: float = Field(ge=0, le=1)
    range_margin: float = Field(ge=0)
    max_categories_checked: int = Field(ge=1)
    drift: DriftParams


class ColumnInferenceParams(Section):
    """How a column's kind is told from its values (tabml.data.column_types)."""

    sample_rows: int = Field(ge=100)  # values looked at per column
    parse_share: float = Field(gt=0.5, le=1)  # share of values that must parse for text to become numbers/dates
    unique_share: float = Field(gt=0, le=1)  # text this unique (with more than min_unique_rows values) is an id
    min_unique_rows: int = Field(ge=1)
    free_text_length: int = Field(ge=1)  # mean length above which a unique text column is free text
    code_max_levels: int = Field(ge=2)  # an integer column named like a code with at most this many values


class PreprocessParams(Section):
    input: Path  # the table preprocess reads (validate publishes the accepted snapshot there); evaluate and
    # register read their raw test rows from it too
    out_dir: Path
    seed: int
    test_size: float = Field(gt=0, lt=0.5)
    val_size: float = Field(gt=0, lt=0.5)
    max_levels: int = Field(ge=2)
    min_level_count: int = Field(ge=1)
    text_levels_threshold: int = Field(ge=2)
    n_quantiles: int = Field(ge=2)  # training quantiles kept per numeric column (the quantile-normal view)
    inference: ColumnInferenceParams


class TrainParams(Section):
    out_dir: Path
    checkpoint_dir: Path
    model: Literal["tabm", "mlp", "embedding_mlp", "ft_transformer"]
    hidden_sizes: list[int] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)
    embedding_dim: int = Field(ge=1)  # numeric (periodic) embedding width; category embeddings grow with levels
    category_embedding_max: int = Field(ge=2)  # widest category embedding
    periodic_frequencies: int = Field(ge=1)  # embedding_mlp: learned frequencies per numeric input
    periodic_sigma: float = Field(gt=0)  # embedding_mlp: scale of their initialisation
    token_dim: int = Field(ge=1)  # ft_transformer: width of each feature token
    transformer_blocks: int = Field(ge=1)
    attention_heads: int = Field(ge=1)
    ensemble_size: int = Field(ge=1)  # tabm: sub-networks sharing the MLP
    n_bins: int = Field(ge=1)  # tabm: piecewise-linear bins per numeric column (at most)
    input_clip: float = Field(gt=0)  # mlp, embedding_mlp, ft_transformer: robust views clamped to +-this
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    lr_plateau_factor: float = Field(gt=0, lt=1)  # the learning rate is multiplied by this when val_loss stalls
    lr_plateau_patience: int = Field(ge=0)  # epochs without improvement before it is
    batch_size: int = Field(ge=1)  # global: rows per optimiser step over all ranks
    eval_batch_size: int = Field(ge=1)
    steps_per_execution: int = Field(ge=1)  # optimiser steps per Lightning training_step call
    min_steps_per_epoch: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    epoch_budget_rows: int = Field(ge=0)  # 0: always max_epochs; else at most this many rows seen
    patience: int = Field(ge=1)
    class_weighting: bool
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"]
    devices: int | str
    cpu_threads: Annotated[int, Field(ge=1)] | Literal["auto"]  # torch threads per process on CPU (auto: its own)
    num_nodes: int = Field(ge=1)
    strategy: Literal["auto", "ddp"]
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"]
    sync_batchnorm: bool
    ddp_timeout_seconds: float = Field(gt=0)
    checkpoint_every_n_steps: int = Field(ge=0)  # 0: at the end of each epoch only
    resume: bool
    seed: int
    deterministic: bool
    launcher: LauncherParams

    @model_validator(mode="after")
    def _heads_divide_tokens(self) -> TrainParams:
        if self.token_dim % self.attention_heads:
            raise ValueError(
                f"token_dim ({self.token_dim}) must be a multiple of attention_heads ({self.attention_heads})"
            )
        return self


class EvaluateParams(Section):
    out_dir: Path
    metrics: Path
    max_curve_points: int = Field(ge=2)
    max_residual_points: int = Field(ge=2)
    calibration_bins: int = Field(ge=2)
    slices: dict[str, list[str]]  # model line (data.name) -> raw category columns scored value by value
    min_slice_rows: int = Field(ge=1)
    linear_baseline_l2: float = Field(gt=0)

    def slice_columns(self, name: str) -> list[str]:
        return self.slices.get(name, [])


class ChampionParams(Section):
    """How a challenger must beat the production model to replace it."""

    min_improvement: dict[TaskType, float]  # primary-metric gain required, in the metric's units
    confidence: float = Field(gt=0, lt=1)
    bootstrap_samples: int = Field(ge=100)
    seed: int
    slice_tolerance: float = Field(ge=0)  # largest drop of the primary metric allowed on any slice value
    slice_tolerances: dict[str, float]  # per slice column, overriding slice_tolerance


class ReproduceParams(Section):
    out_dir: Path
    metric_tolerance: float = Field(ge=0)  # largest |rebuilt - registered| per test metric


class RegisterParams(Section):
    registry_dir: Path
    record: Path
    gate_report: Path
    primary_metric: str | None  # null: per task (tabml.core.metric_names.PRIMARY_METRIC)
    thresholds: dict[TaskType, dict[str, float]]
    baselines: dict[Literal["majority", "linear"], float]  # baseline -> relative tie tolerance
    linear_fallback: bool  # a network that loses to the linear baseline: register a linear model instead
    champion: ChampionParams
    reproduce: ReproduceParams
    gto_tags: bool
    lock_timeout_seconds: float = Field(gt=0)
    in_experiments: bool  # register inside `dvc exp run` too (false: an experiment leaves the registry alone)
    signing_key_env: str | None = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")  # env var with the HMAC key; null: unsigned

    @model_validator(mode="after")
    def _metrics_exist(self) -> RegisterParams:
        for task, bounds in self.thresholds.items():
            unknown = sorted(set(bounds) - set(TASK_METRICS[task]))
            if unknown:
                raise ValueError(f"thresholds.{task}: {unknown} are not {task} metrics (known: {TASK_METRICS[task]})")
        return self


class Params(Section):
    data: DataParams
    ingest: IngestParams
    validate_: ValidateParams = Field(alias="validate")
    preprocess: PreprocessParams
    train: TrainParams
    evaluate: EvaluateParams
    register_: RegisterParams = Field(alias="register")
    predict: PredictParams
    tracking: TrackingParams
    orchestration: OrchestrationParams
    serve: ServeParams
    monitor: MonitorParams

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _sections_agree(self) -> Params:
        problems = cross_section_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def cross_section_problems(params: Params) -> list[str]:
    """Keys that each section accepts alone but that contradict another section."""
    problems = []
    primary = params.register_.primary_metric
    if primary is not None and primary not in TASK_METRICS[params.data.task]:
        problems.append(
            f"register.primary_metric {primary!r} is not a {params.data.task} metric "
            f"(known: {list(TASK_METRICS[params.data.task])})"
        )
    slice_columns = set(params.evaluate.slice_columns(params.data.name))
    for column in sorted(set(params.register_.champion.slice_tolerances) - slice_columns):
        problems.append(
            f"register.champion.slice_tolerances.{column}: not a slice column of {params.data.name!r} "
            f"(evaluate.slices.{params.data.name}: {sorted(slice_columns)})"
        )
    return problems


class ParamsError(ValueError):
    """params.yaml is missing, not YAML, or does not match the schema."""


def workspace_problems(params: Params) -> list[str]:
    """`evaluate.slices` keys that look like a typo of a model line: `credti` beside data.name `credit`.

    A key for another table's line is legitimate (switching tables keeps their settings); a key that is no known
    line but one letter away from one would silently drop that line's slice checks."""
    import difflib

    known = {params.data.name}
    for folder in (params.validate_.reference_dir, params.register_.registry_dir):
        known |= {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
    problems = []
    for line in sorted(set(params.evaluate.slices) - known):
        close = difflib.get_close_matches(line, sorted(known), n=1, cutoff=0.8)
        if close:
            problems.append(
                f"evaluate.slices.{line}: no model line {line!r} here; did you mean {close[0]!r}? "
                f"(data.name is {params.data.name!r})"
            )
    return problems


def load_params(path: Path = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml; errors name the key and what to change."""
    if not path.exists():
        raise ParamsError(f"{path}: file not found. Run from the project root or pass --params.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(describe(exc, path)) from None


def describe(exc: ValidationError, path: Path) -> str:
    """One line per wrong key, named as in the file (`register.thresholds`, not `register_.thresholds`)."""
    lines = [f"{path}: invalid parameters:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]).replace("validate_", "validate").replace("register_", "register")
        message = str(err["msg"]).removeprefix("Value error, ")
        if key and SUBKEY.match(message):  # a section's own check names the key inside it: `thresholds.binary: ...`
            lines.append(f"  {key}.{message}")
        else:
            lines.append(f"  {key}: {message}" if key else f"  {message}")
    return "\n".join(lines)
