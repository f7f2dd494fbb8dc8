"""The failures a user can act on, and the exit codes a stage reports them with.

The exit code is the contract between a stage and whatever runs it (the Prefect flow, `dvc repro`, SLURM):

    0   ok
    1   crash: an unexpected exception (a traceback); a rerun may succeed, so the flow retries it
    2   usage: a wrong command line (argparse); never retried
    65  bad input (EX_DATAERR): the data or params.yaml is wrong and says what to fix; never retried
    75  transient (EX_TEMPFAIL): I/O, a full disk, a lock held elsewhere; retried with backoff
    130 interrupted (Ctrl-C); the run stops

A process killed by a signal reports no code of its own (the flow treats it as transient: a rerun resumes).
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0
    CRASH = 1
    USAGE = 2
    BAD_INPUT = 65
    TRANSIENT = 75
    INTERRUPTED = 130

    @property
    def retryable(self) -> bool:
        """Whether running the stage again, unchanged, could succeed."""
        return self in (ExitCode.CRASH, ExitCode.TRANSIENT)


class StageError(RuntimeError):
    """A failure the user can act on: says what failed, where, and what to do. Exits with `exit_code`."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, what: str, where: str | Path = "", todo: str = "") -> None:
        self.what, self.where, self.todo = what, str(where), todo
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text}\n  what to do: {self.todo}" if self.todo else text


class TransientError(StageError):
    """A failure a rerun may get past (a lock held by another run, a full disk, a network file system)."""

    exit_code = ExitCode.TRANSIENT
