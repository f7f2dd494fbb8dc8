"""The thin command-line shell every stage module shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tabml.core.env import quiet_telemetry
from tabml.core.errors import StageError
from tabml.core.params import DEFAULT_PARAMS, Params, ParamsError, load_params


def stage_main(stage: str, run: Callable[[Params], object], argv: Sequence[str] | None = None) -> int:
    """Parse `--params`, run the stage, turn known failures into one readable line and exit code 1."""
    parser = argparse.ArgumentParser(prog=f"python -m tasks.{stage}", description=f"Run the {stage} stage.")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    quiet_telemetry()
    try:
        run(load_params(args.params))
    except (StageError, ParamsError) as exc:
        print(f"[{stage}] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except FileNotFoundError as exc:
        missing = StageError(
            "an input is missing",
            exc.filename or str(exc),
            "run the stages before this one first: `dvc repro` (or the Prefect flow) runs them in order",
        )
        print(f"[{stage}] FAILED: {missing}", file=sys.stderr, flush=True)
        return 1
    return 0
