"""Typed view of `params.yaml`: one model per section, unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class ValidateParams(Section):
    report: Path
    reference_dir: Path
    min_rows: int = Field(ge=1)
    max_null_fraction_margin: float = Field(ge=0, le=1)
    range_margin: float = Field(ge=0)
    max_categories_checked: int = Field(ge=1)


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
    model: Literal["mlp", "embedding_mlp"]
    hidden_sizes: list[int] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)
    embedding_dim: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(ge=1)
    min_steps_per_epoch: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    class_weighting: bool
    accelerator: str
    devices: int | str
    num_nodes: int = Field(ge=1)
    strategy: str
    precision: str
    seed: int
    deterministic: bool


class EvaluateParams(Section):
    out_dir: Path
    metrics: Path
    max_curve_points: int = Field(ge=2)
    max_residual_points: int = Field(ge=2)


class RegisterParams(Section):
    registry_dir: Path
    record: Path
    primary_metric: str | None = None
    thresholds: dict[TaskType, dict[str, float]] = {}
    gto_tags: bool
    lock_timeout_seconds: float = Field(default=60, gt=0)


class TrackingParams(Section):
    project: str
    mode: Literal["offline", "online", "disabled"]
    dir: Path


class StagePolicy(Section):
    retries: int = Field(default=0, ge=0)
    retry_delay_seconds: float = Field(default=5, ge=0)
    timeout_seconds: float | None = Field(default=None, gt=0)


class OrchestrationParams(Section):
    stages: dict[str, StagePolicy] = {}

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
