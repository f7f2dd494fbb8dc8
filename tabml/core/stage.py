"""The thin command-line shell every stage module shares: params in, one readable line and an exit code out.

Besides its exit code (tabml.core.errors), a stage run under the flow writes what happened to the JSON file
named by TABML_STAGE_STATUS: `running` when it starts, then its exit code, kind and one-line reason. The flow
reads that file instead of parsing output: a file still saying `running` means the process was killed.
The record also names the stage's process group: under the flow a stage leads one and dies with the flow
(tabml.core.lifeline).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from tabml.core.env import quiet_telemetry
from tabml.core.errors import ExitCode, StageError, TransientError
from tabml.core.fs_errors import file_system_failure
from tabml.core.lifeline import tie_to_flow
from tabml.core.params import DEFAULT_PARAMS, Params, ParamsError, load_params, workspace_problems

STATUS_ENV = "TABML_STAGE_STATUS"
RANK_ENVS = ("RANK", "LOCAL_RANK", "SLURM_PROCID")  # under DDP only global rank 0 reports


def write_status(stage: str, exit_code: ExitCode | None, message: str = "") -> None:
    """Record the stage's state for the flow (no-op outside it, and on ranks other than 0)."""
    path = os.environ.get(STATUS_ENV)
    if not path or any(os.environ.get(name, "0") != "0" for name in RANK_ENVS):
        return
    state = "running" if exit_code is None else exit_code.name.lower()
    record = {"stage": stage, "state": state, "exit_code": None if exit_code is None else int(exit_code)}
    record |= {"pid": os.getpid(), "pgid": os.getpgrp()}
    with contextlib.suppress(OSError):  # the exit code still tells
        Path(path).write_text(json.dumps({**record, "message": message}) + "\n")


def classify(exc: BaseException, stage: str = "this") -> tuple[ExitCode, str]:
    """The exit code and the one line a failure is reported with."""
    if isinstance(exc, StageError):
        return exc.exit_code, str(exc)
    refused = file_system_failure(exc, stage)  # a full disk, read-only, permission, size limit: any library
    if refused is not None:
        return refused.exit_code, str(refused)
    if isinstance(exc, ParamsError):
        return ExitCode.BAD_INPUT, str(exc)
    if isinstance(exc, FileNotFoundError):
        missing = StageError(
            "an input is missing",
            exc.filename or str(exc),
            "run the stages before this one first: `dvc repro` (or the Prefect flow) runs them in order",
        )
        return ExitCode.BAD_INPUT, str(missing)
    if isinstance(exc, OSError):
        where = exc.filename or "a file this stage writes"
        failure = TransientError(exc.strerror or str(exc), where, "free disk space or fix the file system, then rerun")
        return ExitCode.TRANSIENT, str(failure)
    return ExitCode.CRASH, f"{type(exc).__name__}: {exc}"


def checked_params(path: Path) -> Params:
    """params.yaml, validated on its own and against the workspace it runs in."""
    params = load_params(path)
    problems = workspace_problems(params)
    if problems:
        raise ParamsError(f"{path}: invalid parameters:\n  " + "\n  ".join(problems))
    return params


def stage_main(stage: str, run: Callable[[Params], object], argv: Sequence[str] | None = None) -> int:
    """Parse `--params`, run the stage, turn failures into one readable line and an exit code."""
    parser = argparse.ArgumentParser(prog=f"python -m tasks.{stage}", description=f"Run the {stage} stage.")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    quiet_telemetry()
    tie_to_flow(stage)
    write_status(stage, None)
    try:
        run(checked_params(args.params))
    except KeyboardInterrupt:
        write_status(stage, ExitCode.INTERRUPTED, "interrupted")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every failure leaves with its code and its reason
        code, message = classify(exc, stage)
        if code == ExitCode.CRASH:
            traceback.print_exc()
        print(f"[{stage}] FAILED: {message}", file=sys.stderr, flush=True)
        write_status(stage, code, message)
        return code
    write_status(stage, ExitCode.OK)
    return ExitCode.OK
