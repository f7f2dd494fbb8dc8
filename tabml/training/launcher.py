"""The train stage handed to a launcher by params alone: `train.launcher` (none | torchrun | srun) and its args.

dvc.yaml's command stays `python -m tasks.train`. With a launcher set, that first process starts
`<launcher> <args> python -m tasks.train ...` and waits for it; the ranks it starts see TABML_LAUNCHED and train.
A node's rank and the master's address come from the environment the cluster gives each node (torchrun reads
PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT, as a Kubeflow PyTorchJob sets them; srun its SLURM_* variables).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tabml.core.errors import ExitCode
from tabml.core.ops_params import LauncherParams
from tabml.core.params import DEFAULT_PARAMS, ParamsError, load_params
from tabml.core.stage import write_status

LAUNCHED_ENV = "TABML_LAUNCHED"  # set for the launched ranks: they train instead of launching again


def launch_command(p: LauncherParams, python: str, module: str, stage_args: Sequence[str]) -> list[str] | None:
    """The command that starts the stage's ranks; None: the stage runs in this process. Pure."""
    if p.kind == "torchrun":
        return [python, "-m", "torch.distributed.run", *p.args, "-m", module, *stage_args]
    if p.kind == "srun":
        return ["srun", *p.args, python, "-m", module, *stage_args]
    return None


def launch_if_configured(stage: str, module: str, argv: Sequence[str] | None) -> int | None:
    """Run the stage under `train.launcher` and return its exit code; None: run it here (no launcher, or a rank)."""
    if os.environ.get(LAUNCHED_ENV):
        return None
    stage_args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    known, _ = parser.parse_known_args(stage_args)
    try:
        launcher = load_params(known.params).train.launcher
    except (ParamsError, OSError):
        return None  # the stage shell reports it in its own words
    command = launch_command(launcher, sys.executable, module, stage_args)
    if command is None:
        return None
    if shutil.which(command[0]) is None:
        message = (
            f"train.launcher.kind is {launcher.kind}, but `{command[0]}` is not on PATH here\n"
            f"  what to do: run on a node that has it, or set train.launcher.kind: none in {known.params}"
        )
        print(f"[{stage}] FAILED: {message}", file=sys.stderr, flush=True)
        write_status(stage, ExitCode.BAD_INPUT, message)  # the flow does not retry a setting
        return ExitCode.BAD_INPUT
    print(f"[{stage}] launching: {' '.join(command)}", flush=True)
    return _run_forwarding_signals(command, {**os.environ, LAUNCHED_ENV: "1"})


def _run_forwarding_signals(command: list[str], env: dict[str, str]) -> int:
    """Run `command`; SIGTERM and SIGINT go on to it (a preempted job checkpoints in its ranks, tabml.resume)."""
    proc = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
