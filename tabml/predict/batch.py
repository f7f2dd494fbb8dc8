"""Batch prediction: score a CSV, Parquet or .xlsx file with a registered model version (production by default).

    python -m tabml.predict INPUT OUTPUT [--version N | --stage production|staging] [--name credit]

The package is verified against its MANIFEST first (a tampered file is refused); the input is read by the
reader of record with the dialect the training table was read with as hints (a small batch whose dates or
decimals are ambiguous reads as training did); it is checked like a training batch against the package's
reference (tabml.predict.checks: types, levels, ranges, nulls; `predict.checks` says refuse or warn, rows are
named); rows are transformed with the package's own preprocess_state.json, and the output holds, per input
row and in input order: the id column (when `data.id_column` was set and the input has it), the
`predict.passthrough_columns`, the prediction in the file's own labels (or target units), the probabilities,
the model name and version, and `predict.status_column` when set. Without a params file every check refuses.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tabml.core.data_params import PredictChecks
from tabml.core.env import quiet_telemetry
from tabml.core.errors import ExitCode, StageError
from tabml.core.fs_errors import file_system_failure
from tabml.core.params import DEFAULT_PARAMS, ParamsError, PredictParams, load_params
from tabml.data.preprocessing import PreprocessState
from tabml.data.tables import ReadOptions, read_table
from tabml.evaluation.scorer import Scorer
from tabml.predict.checks import check_input, check_output, row_status
from tabml.predict.output import batch_writer, output_format
from tabml.predict.output import write_table as write_table  # re-exported
from tabml.predict.prediction_log import PredictionLog
from tabml.registry.cli import model_name_arg
from tabml.registry.package import REFERENCE_FILE, Package, load_scorer, signing_key
from tabml.registry.store import load_package
from tabml.validation.reference import Reference

BATCH_ROWS = 100_000  # rows transformed, scored and written at a time
STRICT = PredictParams(  # no params file: nothing is scored that a check would question
    checks=PredictChecks(types="refuse", levels="refuse", ranges="refuse", nulls="refuse"),
    status_column=None,
    passthrough_columns=[],
)


@dataclass(frozen=True)
class PredictionRun:
    name: str
    version: int
    rows: int
    output: Path


def prediction_columns(state: PreprocessState, threshold: float | None, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Pure: the prediction (in the file's own labels, or target units) and the probabilities, per scored row."""
    labels = np.asarray(state.labels or [], dtype=object)
    if state.task == "regression":
        return {"prediction": scores.astype(np.float64)}
    if state.task == "binary":
        assert threshold is not None, "a binary package records its threshold in metrics.json"
        return {
            "prediction": labels[(scores >= threshold).astype(np.int64)],
            f"proba_{labels[1]}": scores.astype(np.float64),
        }
    out = {"prediction": labels[scores.argmax(axis=1)]}
    for k, label in enumerate(labels):
        out[f"proba_{label}"] = scores[:, k].astype(np.float64)
    return out


def prediction_frame(
    scorer: Scorer, frame: pd.DataFrame, name: str, version: int, passthrough: list[str] | None = None
) -> pd.DataFrame:
    """Pure: one output row per input row: [id], passthrough columns, prediction, probabilities, model, version."""
    state, scores = scorer.state, scorer.scores(frame)
    out = pd.DataFrame(index=frame.index)
    if state.id_column and state.id_column in frame.columns:
        out[state.id_column] = frame[state.id_column]
    for column in passthrough or []:
        if column not in out.columns:
            out[column] = frame[column]
    for column, values in prediction_columns(state, scorer.threshold, scores).items():
        out[column] = values
    out["model_name"] = name
    out["model_version"] = version
    return out.reset_index(drop=True)


def load_model_package(
    registry_dir: Path, name: str, version: int | None, stage: str | None, key: bytes | None = None
) -> tuple[Package, Scorer]:
    """The verified package and its scorer."""
    package = load_package(registry_dir, name, version, stage, key)  # type: ignore[arg-type]
    try:
        return package, load_scorer(package)
    except (ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise StageError(
            f"{name} v{package.entry.version} cannot be loaded by this version of the code ({first})",
            package.path,
            "score with a newer version, or check out the code it was registered with (its lineage.json git rev)",
        ) from None


def package_reference(package: Package) -> Reference | None:
    """The reference the model was trained under; None (schema checks only) for packages that predate it."""
    if not (package.path / REFERENCE_FILE).exists():
        print(
            f"[predict] note: {package.name} v{package.entry.version} carries no {REFERENCE_FILE}: only the input "
            "schema is checked (register the model again for level, range and null checks)",
            file=sys.stderr,
        )
        return None
    return Reference.model_validate(package.document(REFERENCE_FILE))


def check_passthrough(frame: pd.DataFrame, policy: PredictParams, source: Path) -> None:
    missing = [c for c in policy.passthrough_columns if c not in frame.columns]
    if missing:
        raise StageError(
            f"predict.passthrough_columns names columns that are not in the input: {missing}",
            source,
            f"use columns of the input ({list(frame.columns)[:20]}) or remove them from predict.passthrough_columns",
        )


def predict_file(
    registry_dir: Path,
    name: str,
    source: Path,
    output: Path,
    version: int | None = None,
    stage: str | None = None,
    key: bytes | None = None,
    protected: tuple[Path, ...] = (),
    log: PredictionLog | None = None,
    policy: PredictParams = STRICT,
    read: ReadOptions | None = None,
) -> PredictionRun:
    """Verify the package, read and check the input as training was, score it, write the predictions (never into
    the registry or the `protected` folders; appended to `log` when given)."""
    check_output(output, [registry_dir, *protected])
    output_format(output)  # an unknown output format is refused before any work
    package, scorer = load_model_package(registry_dir, name, version, stage, key)
    reference = package_reference(package)
    frame = read_table(source, read or ReadOptions(), hints=reference.dialect if reference else None)
    check_passthrough(frame, policy, source)
    problems = check_input(frame, package, source, reference, policy)
    for problem in problems:
        print(f"[predict] warning: {source}: {problem.message}", file=sys.stderr)
    with batch_writer(output) as write:
        for start in range(0, len(frame), BATCH_ROWS):
            rows = frame.iloc[start : start + BATCH_ROWS]
            out = prediction_frame(scorer, rows, name, package.entry.version, policy.passthrough_columns)
            if policy.status_column:
                out[policy.status_column] = row_status(len(rows), problems, start)
            write(out)
            if log is not None:
                log.append(name, package.entry.version, rows.reset_index(drop=True), out, scorer.state.id_column)
    return PredictionRun(name, package.entry.version, len(frame), output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tabml.predict", description="Score a table with a model.")
    parser.add_argument("input", type=Path, help="CSV or Parquet file with the model's input columns")
    parser.add_argument("output", type=Path, help="where to write the predictions (.csv or .parquet)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=lambda t: int(t.removeprefix("v")), help="a version number (3 or v3)")
    which.add_argument("--stage", choices=["production", "staging"], help="default: production")
    parser.add_argument("--name", type=model_name_arg, help="model line (default: data.name from params)")
    parser.add_argument("--registry-dir", type=Path, help="default: register.registry_dir from params")
    parser.add_argument("--params", type=Path, help=f"default: {DEFAULT_PARAMS} (for --name/--registry-dir/predict:)")
    for setting in ("encoding", "delimiter", "decimal", "thousands"):
        parser.add_argument(f"--{setting}", help=f"how the input is written, as data.{setting} (default: detected)")
    args = parser.parse_args(argv)
    read = ReadOptions(encoding=args.encoding, delimiter=args.delimiter, decimal=args.decimal, thousands=args.thousands)
    quiet_telemetry()
    try:
        needed = args.params is not None or not (args.name and args.registry_dir)
        params = load_params(args.params or DEFAULT_PARAMS) if needed else None
        name = args.name or params.data.name  # type: ignore[union-attr]
        registry_dir = args.registry_dir or params.register_.registry_dir  # type: ignore[union-attr]
        key = signing_key(params.register_) if params else None
        protected = (params.validate_.reference_dir,) if params else ()
        log = PredictionLog.from_params(params.serve) if params and params.serve.log_sample_rate > 0 else None
        policy = params.predict if params is not None else STRICT
        try:
            done = predict_file(
                registry_dir, name, args.input, args.output, args.version, args.stage, key, protected, log, policy, read
            )
        finally:
            if log is not None:
                log.close()
    except (StageError, ParamsError) as exc:
        print(f"[predict] FAILED: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, StageError) else ExitCode.BAD_INPUT
    except Exception as exc:
        refused = file_system_failure(exc, "predict")  # a full disk, `ulimit -f`, read-only: one line, no temp file
        if refused is None:
            raise
        print(f"[predict] FAILED: {refused}", file=sys.stderr)
        return int(refused.exit_code)
    print(f"scored {done.rows} rows of {args.input} with {done.name} v{done.version} -> {done.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
