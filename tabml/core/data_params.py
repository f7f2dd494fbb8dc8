"""The `data:` and `predict:` sections of params.yaml: how the table is written, what each column is for, and
what a file sent for scoring must pass. Re-exported by tabml.core.params (import them from there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TaskType = Literal["binary", "multiclass", "regression"]
ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text", "drop"]
Policy = Literal["refuse", "warn"]


MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"  # a model line: a registry folder name and a GTO artifact name


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    """Where the table is, how it is written, and what each column is for."""

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    path: Path
    format: Literal["auto", "csv", "parquet", "xlsx"] = "auto"
    encoding: str | None = None
    delimiter: Literal[",", ";", "\t", "|"] | None = None
    decimal: Literal[".", ","] | None = None
    thousands: Literal[",", ".", " ", "\u00a0", "'", ""] | None = None
    na_values: list[str] = []
    sheet: str | None = None
    date_formats: dict[str, str] = {}
    target: str
    task: TaskType
    positive_class: str | None = None
    id_column: str | None = None
    drop_columns: list[str] = []
    column_types: dict[str, ColumnKind] = {}

    @field_validator("positive_class", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        # YAML reads `yes`, `no`, `true`, `on` as booleans: the label written in the file is lost, so say so.
        if isinstance(value, bool):
            raise ValueError(
                f"YAML read the label as the boolean {value}; quote it as written in the file, "
                'e.g. positive_class: "yes" (or "True", "1")'
            )
        if isinstance(value, int | float):
            return str(value)
        return value

    @model_validator(mode="after")
    def _roles_agree(self) -> DataParams:
        problems = []
        if self.target in self.drop_columns:
            problems.append(f"the target {self.target!r} is listed in data.drop_columns; remove it from there")
        if self.target in self.column_types:
            problems.append(f"the target {self.target!r} has a data.column_types override; remove it from there")
        if self.id_column is not None and self.id_column == self.target:
            problems.append(f"data.id_column {self.id_column!r} is the target; name another column or null")
        if self.decimal is not None and self.decimal == self.thousands:
            problems.append(f"data.decimal and data.thousands are both {self.decimal!r}")
        for column, fmt in self.date_formats.items():
            if "%" not in fmt:
                problems.append(f'data.date_formats.{column}: {fmt!r} is no strptime format (e.g. "%d/%m/%Y")')
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PredictChecks(Section):
    """Per check, what a predict input that fails it gets: refused (nothing written) or a warning."""

    types: Policy
    levels: Policy
    ranges: Policy
    nulls: Policy


class PredictParams(Section):
    """`python -m tabml.predict`: the checks against the model's reference and what the output carries."""

    checks: PredictChecks
    status_column: str | None  # a per-row status column in the output ("ok" or what failed); null: none
    passthrough_columns: list[str]  # input columns copied into the output beside the id column
