"""Batch prediction as a Prefect flow: resolve and verify a registered model, score a file, write the result.

Usage: python -m flows.predict INPUT OUTPUT [--version N | --stage staging] [--root .]
The tasks pass paths, never frames; the work is tabml.predict's, the same as `python -m tabml.predict`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tabml.core.env import quiet_telemetry
from tabml.core.errors import StageError
from tabml.core.params import ParamsError, load_params
from tabml.orchestration.entry import prefect_state_in, project_prefect_home
from tabml.orchestration.reaper import guard_flow_process


def _key(params_path: str) -> bytes | None:
    """The signing key (register.signing_key_env), read inside the task: it never becomes a flow parameter."""
    from tabml.registry.package import signing_key

    return signing_key(load_params(Path(params_path)).register_)


@task(cache_policy=NO_CACHE, persist_result=False)
def resolve_model(registry_dir: str, name: str, version: int | None, stage: str | None, params_path: str) -> int:
    """The version to use, after verifying every file of its package; fails on a tampered package."""
    from tabml.registry.store import load_package

    key = _key(params_path)
    return load_package(Path(registry_dir), name, version, stage, key).entry.version  # type: ignore[arg-type]


@task(cache_policy=NO_CACHE, persist_result=False)
def score_file(registry_dir: str, name: str, version: int, source: str, output: str, params_path: str) -> Path:
    """Check the input as a training batch (`predict:` policy), score it, write the predictions; the output path."""
    from tabml.predict.batch import predict_file

    params = load_params(Path(params_path))
    references = (Path(params_path).parent / params.validate_.reference_dir,)
    key = _key(params_path)
    return predict_file(
        Path(registry_dir), name, Path(source), Path(output), version, None, key, references, policy=params.predict
    ).output


@flow(name="batch-predict", persist_result=False, result_serializer="json")  # nothing pickled (flows/pipeline.py)
def batch_predict(
    source: str,
    output: str,
    version: int | None = None,
    stage: str | None = None,
    root: str = ".",
    params_file: str = "params.yaml",
) -> str:
    """Score `source` with `version` (or the model in `stage`, production by default) of the params' model line."""
    quiet_telemetry()
    logger = get_run_logger()
    project = Path(root).resolve()
    params = load_params(project / params_file)
    registry_dir, name = str(project / params.register_.registry_dir), params.data.name
    params_path = str(project / params_file)
    resolved = resolve_model(registry_dir, name, version, stage, params_path)
    written = score_file(registry_dir, name, resolved, str(project / source), str(project / output), params_path)
    logger.info(f"scored {source} with {name} v{resolved} -> {written}")
    create_markdown_artifact(
        markdown=f"# Batch prediction\n\n| model | version | input | output |\n|---|---|---|---|\n"
        f"| {name} | v{resolved} | {source} | {written} |\n",
        key="batch-prediction",
        description="Which model version scored which file",
    )
    return str(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.predict", description="Batch prediction as a Prefect flow.")
    parser.add_argument("input", help="CSV or Parquet file, relative to --root")
    parser.add_argument("output", help="predictions file (.csv or .parquet), relative to --root")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=lambda t: int(t.removeprefix("v")))
    which.add_argument("--stage", choices=["production", "staging"])
    parser.add_argument("--root", default=".", help="project root holding params.yaml and the registry")
    args = parser.parse_args(argv)
    quiet_telemetry()  # before the flow starts a local Prefect server, which inherits this environment
    home = project_prefect_home(args.root)
    guard_flow_process()  # a kill -9 of this process takes its temporary server and its stage with it
    try:
        with prefect_state_in(home):
            batch_predict(args.input, args.output, args.version, args.stage, args.root)
    except (StageError, ParamsError) as exc:
        print(f"batch-predict FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
