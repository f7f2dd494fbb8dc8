"""The stage shell's side of the stage/flow contract: one line, an exit code by kind, and the status file."""

import json
import shutil
from pathlib import Path

import pytest

from tabml.core.errors import ExitCode, StageError, TransientError
from tabml.core.stage import STATUS_ENV, stage_main
from tests.workspace import EXAMPLE_PARAMS


@pytest.fixture
def status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(EXAMPLE_PARAMS, tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "status.json"
    monkeypatch.setenv(STATUS_ENV, str(path))
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    return path


def raising(exc: BaseException):  # noqa: ANN201
    def run(params: object) -> None:
        raise exc

    return run


@pytest.mark.parametrize(
    ("failure", "code", "line"),
    [
        (StageError("3 rows have no target", "data/x.csv", "fill them"), ExitCode.BAD_INPUT, "data/x.csv: 3 rows"),
        (TransientError("registry busy", "registry/x/.lock"), ExitCode.TRANSIENT, "registry busy"),
        (
            OSError(28, "No space left on device", "data/snapshot/t.parquet"),
            ExitCode.TRANSIENT,
            "no space left on the device",
        ),
        (FileNotFoundError(2, "missing", "data/processed/train.npz"), ExitCode.BAD_INPUT, "an input is missing"),
        (RuntimeError("unexpected"), ExitCode.CRASH, "RuntimeError: unexpected"),
    ],
)
def test_each_kind_of_failure_exits_with_its_code_and_says_so_in_the_status_file(
    status: Path, capsys: pytest.CaptureFixture[str], failure: BaseException, code: ExitCode, line: str
) -> None:
    assert stage_main("demo", raising(failure), []) == code
    err = capsys.readouterr().err
    assert "[demo] FAILED: " in err and line in err
    assert ("Traceback" in err) == (code == ExitCode.CRASH)  # only a crash shows one
    recorded = json.loads(status.read_text())
    assert recorded["exit_code"] == code and recorded["state"] == code.name.lower() and line in recorded["message"]


def test_success_and_interruption_are_recorded_too(status: Path) -> None:
    assert stage_main("demo", lambda params: None, []) == ExitCode.OK
    assert json.loads(status.read_text())["state"] == "ok"
    assert stage_main("demo", raising(KeyboardInterrupt()), []) == ExitCode.INTERRUPTED
    assert json.loads(status.read_text())["state"] == "interrupted"


def test_only_global_rank_zero_reports(status: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    assert stage_main("demo", raising(StageError("bad")), []) == ExitCode.BAD_INPUT
    assert not status.exists()


def test_which_codes_a_rerun_could_fix() -> None:
    assert {c for c in ExitCode if c.retryable} == {ExitCode.CRASH, ExitCode.TRANSIENT}
