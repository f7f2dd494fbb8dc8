"""The failures a user can act on, and the exit codes a stage reports them with."""

from __future__ import annotations

from pathlib import Path


class StageError(RuntimeError):
    """A failure the user can act on: says what failed, where, and what to do."""

    def __init__(self, what: str, where: str | Path = "", todo: str = "") -> None:
        self.what, self.where, self.todo = what, str(where), todo
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text}\n  what to do: {self.todo}" if self.todo else text
