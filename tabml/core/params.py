"""Typed view of `params.yaml`: one model per section, unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

TaskType = Literal["binary", "multiclass", "regression"]
ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text", "drop"]
DEFAULT_PARAMS = Path("params.yaml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    """Where the table is and what each column is for."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    path: Path
    format: Literal["auto", "csv", "parquet"] = "auto"
    target: str
    task: TaskType
    positive_class: str | None = None
    id_column: str | None = None
    drop_columns: list[str] = []
    column_types: dict[str, ColumnKind] = {}

    @field_validator("positive_class", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        # YAML reads `yes`, `1` and `true` as bool/int; the file holds text.
        if isinstance(value, bool):
            return "True" if value else "False"
        if isinstance(value, int | float):
            return str(value)
        return value


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
    accepted_snapshot: Path
    quarantine_dir: Path
    reference_dir: Path
    min_rows: int = Field(ge=1)
    max_null_fraction_margin: float = Field(ge=0, le=1)
    range_margin: float = Field(ge=0)
    max_categories_checked: int = Field(ge=1)
    drift: DriftParams


class PreprocessParams(Section):
    out_dir: Path
    seed: int
    test_size: float = Field(gt=0, lt=0.5)
    val_size: float = Field(gt=0, lt=0.5)
    max_levels: int = Field(ge=2)
    min_level_count: int = Field(ge=1)
    text_levels_threshold: int = Field(ge=2)


class TrainParams(Section):
    out_dir: Path
    checkpoint_dir: Path
    model: Literal["mlp", "embedding_mlp", "ft_transformer"]
    hidden_sizes: list[int] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)
    embedding_dim: int = Field(ge=1)
    token_dim: int = Field(ge=1)  # ft_transformer: width of each feature token
    transformer_blocks: int = Field(ge=1)
    attention_heads: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(ge=1)  # global: rows per optimiser step over all ranks
    eval_batch_size: int = Field(ge=1)
    steps_per_execution: int = Field(ge=1)  # optimiser steps per Lightning training_step call
    min_steps_per_epoch: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    class_weighting: bool
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"]
    devices: int | str
    num_nodes: int = Field(ge=1)
    strategy: Literal["auto", "ddp"]
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"]
    sync_batchnorm: bool
    ddp_timeout_seconds: float = Field(gt=0)
    checkpoint_every_n_steps: int = Field(ge=0)  # 0: at the end of each epoch only
    resume: bool
    seed: int
    deterministic: bool

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
    slices: dict[str, list[str]] = {}  # model line (data.name) -> raw category columns scored value by value
    min_slice_rows: int = Field(ge=1)
    linear_baseline_l2: float = Field(gt=0)

    def slice_columns(self, name: str) -> list[str]:
        return self.slices.get(name, [])


class ChampionParams(Section):
    """How a challenger must beat the production model to replace it."""

    min_improvement: dict[TaskType, float] = {}  # primary-metric gain required, in the metric's units
    confidence: float = Field(gt=0, lt=1)
    bootstrap_samples: int = Field(ge=100)
    seed: int
    slice_tolerance: float = Field(ge=0)  # largest drop of the primary metric allowed on any slice value
    slice_tolerances: dict[str, float] = {}  # per slice column, overriding slice_tolerance


class ReproduceParams(Section):
    out_dir: Path
    metric_tolerance: float = Field(ge=0)  # largest |rebuilt - registered| per test metric


class RegisterParams(Section):
    registry_dir: Path
    record: Path
    gate_report: Path
    primary_metric: str | None = None
    thresholds: dict[TaskType, dict[str, float]] = {}
    baselines: dict[Literal["majority", "linear"], float] = {}  # baseline -> relative tie tolerance
    champion: ChampionParams
    reproduce: ReproduceParams
    gto_tags: bool
    lock_timeout_seconds: float = Field(default=60, gt=0)


class TrackingParams(Section):
    project: str
    mode: Literal["offline", "online", "disabled"]
    dir: Path


class StagePolicy(Section):
    """Retries and timeout of one flow step (a dvc.yaml stage, or `publish`)."""

    retries: int = Field(default=0, ge=0)
    retry_delay_seconds: float = Field(default=5, ge=0)
    retry_backoff: float = Field(default=2, ge=1)  # each wait is this many times the one before
    timeout_seconds: float | None = Field(default=None, gt=0)

    def retry_delays(self) -> list[float]:
        """Seconds to wait before each retry: 5, 10, 20, ... for delay 5 and backoff 2."""
        return [self.retry_delay_seconds * self.retry_backoff**attempt for attempt in range(self.retries)]


class PublishParams(Section):
    """After a successful run: `dvc push`, then dvc.lock and the git-tracked reports on a run branch."""

    scheduled: bool = True  # runs started from the deployment
    manual: bool = False  # `python -m flows.pipeline` / `make run` (--publish turns it on for one run)
    remote: str | None = None  # DVC remote name; null = the default remote
    branch_prefix: str = Field(default="runs/", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*/$")


class NotifyParams(Section):
    """Where a failed run is reported. The webhook URL is a secret: only the name of its variable lives here."""

    log_file: Path = Path("logs/pipeline_failures.log")
    webhook_url_env: str = Field(default="TABML_NOTIFY_WEBHOOK_URL", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    webhook_timeout_seconds: float = Field(default=10, gt=0)


class DeploymentParams(Section):
    """The scheduled deployment of the pipeline flow (`python -m flows.deploy deploy`)."""

    name: str = "scheduled"
    work_pool: str = "tabml-process"
    work_pool_type: str = "process"  # process | docker | kubernetes | ...
    cron: str | None = "0 3 * * *"  # null = no schedule: runs only when triggered
    timezone: str = "UTC"
    concurrency_limit: int = Field(default=1, ge=1)  # runs beyond the limit wait in the queue
    force: bool = False
    params_overrides: list[str] = []  # `dvc exp run -S` syntax: ["train.lr=0.003"]
    data_path: str | None = None  # shorthand for the override data.path=...


class OrchestrationParams(Section):
    lock_timeout_seconds: float = Field(default=3600, gt=0)  # wait this long for another run on this workspace
    stages: dict[str, StagePolicy] = {}
    publish: PublishParams = PublishParams()
    notify: NotifyParams = NotifyParams()
    deployment: DeploymentParams = DeploymentParams()

    def policy(self, stage: str) -> StagePolicy:
        return self.stages.get(stage, StagePolicy())


class Params(Section):
    data: DataParams
    ingest: IngestParams
    validate_: ValidateParams = Field(alias="validate")
    preprocess: PreprocessParams
    train: TrainParams
    evaluate: EvaluateParams
    register_: RegisterParams = Field(alias="register")
    tracking: TrackingParams
    orchestration: OrchestrationParams = OrchestrationParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ParamsError(ValueError):
    """params.yaml is missing, not YAML, or does not match the schema."""


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
        lines = [f"{path}: invalid parameters:"]
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]).replace("validate_", "validate").replace("register_", "register")
            lines.append(f"  {key}: {err['msg']}")
        raise ParamsError("\n".join(lines)) from None
