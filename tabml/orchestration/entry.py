"""What every flow entry point (`python -m flows.…`) does before a run reaches Prefect.

Prefect state lives in the project's `.prefect/` unless PREFECT_HOME is set (as `make` sets it), so a run
started from a terminal appears in `make server`'s UI; and overrides that look like secrets are refused here,
before they would be stored as flow-run parameters in Prefect's database (and shown in its UI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tabml.orchestration.overrides import override_for, refuse_secrets


def project_prefect_home(root: str | Path) -> Path:
    """PREFECT_HOME, defaulting to `<root>/.prefect`; set in the environment for the processes Prefect starts."""
    if os.environ.get("PREFECT_HOME"):
        return Path(os.environ["PREFECT_HOME"])
    home = Path(root).resolve() / ".prefect"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(home)
    return home


@contextmanager
def prefect_state_in(home: Path) -> Iterator[None]:
    """This process's Prefect settings with `home` (Prefect read its settings when it was imported)."""
    from prefect.settings import PREFECT_HOME, temporary_settings

    with temporary_settings({PREFECT_HOME: home}):
        yield


def refuse_secret_parameters(overrides: Sequence[str], data_path: str | None) -> None:
    """ParamsError when an override or the data path carries a secret (a URL's user:password, an api_key=)."""
    refuse_secrets([*overrides, *([override_for("data.path", data_path)] if data_path else [])])
