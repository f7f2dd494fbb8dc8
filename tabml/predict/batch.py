"""Batch prediction: score a CSV or Parquet file with a registered model version (production by default).

    python -m tabml.predict INPUT OUTPUT [--version N | --stage production|staging] [--name credit]

The package is verified against its MANIFEST first (a tampered file is refused), the input is checked
against the model's input schema (missing columns, unparseable numbers or dates: a clear error, nothing
written), rows are transformed with the package's own preprocess_state.json, and the output holds, per
input row and in input order: the id column (when `data.id_column` was set and the input has it), the
prediction in the file's own labels (or target units), the probabilities, and the model name and version.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tabml.core.env import quiet_telemetry
from tabml.core.errors import ExitCode, StageError
from tabml.core.files import atomic_path
from tabml.core.fs_errors import file_system_failure
from tabml.core.params import DEFAULT_PARAMS, ParamsError, load_params
from tabml.data.preprocessing import PreprocessState
from tabml.evaluation.scorer import Scorer
from tabml.predict.checks import check_input, check_output
from tabml.predict.prediction_log import PredictionLog
from tabml.registry.cli import model_name_arg
from tabml.registry.package import Package, load_scorer, signing_key
from tabml.registry.store import load_package

OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


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


def prediction_frame(scorer: Scorer, frame: pd.DataFrame, name: str, version: int) -> pd.DataFrame:
    """Pure: one output row per input row: [id], prediction, probabilities, model name and version."""
    state, scores = scorer.state, scorer.scores(frame)
    out = pd.DataFrame(index=frame.index)
    if state.id_column and state.id_column in frame.columns:
        out[state.id_column] = frame[state.id_column]
    for column, values in prediction_columns(state, scorer.threshold, scores).items():
        out[column] = values
    out["model_name"] = name
    out["model_version"] = version
    return out.reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise StageError(f"unknown output format {path.suffix!r}", path, "name the output .csv or .parquet")
    with atomic_path(path) as tmp:  # a reader never sees half a file; a failed write leaves no temp file
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


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
) -> PredictionRun:
    """Verify the package, validate the input, score it, write the predictions (never into the registry or
    the `protected` folders; appended to `log` when given)."""
    from tabml.data.tables import read_table

    check_output(output, [registry_dir, *protected])
    package, scorer = load_model_package(registry_dir, name, version, stage, key)
    frame = read_table(source)
    check_input(frame, package, source)
    predictions = prediction_frame(scorer, frame, name, package.entry.version)
    written = write_table(predictions, output)
    if log is not None:
        log.append(name, package.entry.version, frame, predictions, scorer.state.id_column)
    return PredictionRun(name, package.entry.version, len(frame), written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tabml.predict", description="Score a table with a model.")
    parser.add_argument("input", type=Path, help="CSV or Parquet file with the model's input columns")
    parser.add_argument("output", type=Path, help="where to write the predictions (.csv or .parquet)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=lambda t: int(t.removeprefix("v")), help="a version number (3 or v3)")
    which.add_argument("--stage", choices=["production", "staging"], help="default: production")
    parser.add_argument("--name", type=model_name_arg, help="model line (default: data.name from params)")
    parser.add_argument("--registry-dir", type=Path, help="default: register.registry_dir from params")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    args = parser.parse_args(argv)
    quiet_telemetry()
    try:
        params = load_params(args.params) if not (args.name and args.registry_dir) else None
        name = args.name or params.data.name  # type: ignore[union-attr]
        registry_dir = args.registry_dir or params.register_.registry_dir  # type: ignore[union-attr]
        key = signing_key(params.register_) if params else None
        protected = (params.validate_.reference_dir,) if params else ()
        log = PredictionLog.from_params(params.serve) if params and params.serve.log_sample_rate > 0 else None
        try:
            done = predict_file(
                registry_dir, name, args.input, args.output, args.version, args.stage, key, protected, log=log
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
