"""What a file sent for scoring must satisfy: the columns and kinds of the model's input schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tabml.core.errors import StageError
from tabml.data.preprocessing import as_float, datetime_part
from tabml.registry.package import INPUT_SCHEMA_FILE, Package

SHOWN_BAD_VALUES = 5


def schema_problems(frame: pd.DataFrame, columns: list[dict[str, str]]) -> list[str]:
    """Pure: what is wrong with `frame` for a model expecting `columns` ({"name","kind"}); empty when fine."""
    missing = [c["name"] for c in columns if c["name"] not in frame.columns]
    problems = [f"missing columns {missing}"] if missing else []
    for column in columns:
        name, kind = column["name"], column["kind"]
        if name in missing or kind not in ("numeric", "datetime"):
            continue
        values = frame[name]
        parsed = as_float(values) if kind == "numeric" else datetime_part(values, "epoch_days")
        bad = values[values.notna() & ~np.isfinite(parsed)]
        bad = bad[bad.astype("string").str.strip().ne("")]
        if len(bad):
            examples = list(bad.astype(str).unique()[:SHOWN_BAD_VALUES])
            problems.append(f"column {name!r} should be {kind} but {len(bad)} value(s) are not, e.g. {examples}")
    return problems


def check_output(output: Path, protected: list[Path]) -> None:
    """Refuse an output inside the registry, the references or DVC's own folder (they are records, not scratch)."""
    target = output.resolve()
    for folder in protected:
        if target.is_relative_to(folder.resolve()):
            raise StageError(
                f"refusing to write predictions inside {folder}", output, "write them somewhere else, e.g. scored/"
            )
    if ".dvc" in target.parts:
        raise StageError(
            "refusing to write predictions inside .dvc/", output, "write them somewhere else, e.g. scored/"
        )


def check_input(frame: pd.DataFrame, package: Package, source: Path) -> None:
    schema = package.document(INPUT_SCHEMA_FILE)
    problems = schema_problems(frame, schema["columns"])
    if problems:
        expected = ", ".join(f"{c['name']} ({c['kind']})" for c in schema["columns"])
        raise StageError(
            f"does not fit {package.name} v{package.entry.version}: " + "; ".join(problems),
            source,
            f"send the columns the model was trained on: {expected}",
        )
