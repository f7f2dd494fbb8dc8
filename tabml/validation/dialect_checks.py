"""A batch must be written as the reference was: the same date format per column (a changed one is an error)."""

from __future__ import annotations

from tabml.data.dialect import Dialect
from tabml.validation.expectations import Check
from tabml.validation.reference import Reference


def dialect_checks(batch: Dialect | None, ref: Reference) -> list[Check]:
    """One check per date column both know; none when either side predates recorded dialects."""
    if batch is None or ref.dialect is None:
        return []
    checks = []
    for column, expected in sorted(ref.dialect.date_formats.items()):
        observed = batch.date_formats.get(column)
        if observed is None:
            continue  # not read as dates at all: the type check says so
        ok = observed == expected
        message = (
            "ok"
            if ok
            else f"column '{column}': dates are written as {observed!r}, the reference as {expected!r}; "
            f"a changed export (day-first vs month-first?) would shift every date"
        )
        checks.append(Check("date_format", column, "error", ok, expected, observed, message))
    return checks
