"""Stage planning and single-stage reproduction through DVC, on throwaway toy repos (not the real stages)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tabml.core.dag import PipelineDefinitionError, stage_order
from tabml.core.errors import ExitCode
from tabml.core.params import ParamsError
from tabml.orchestration.dvc_stages import (
    PipelinePlan,
    StageFailedError,
    is_retryable,
    plan_pipeline,
    reproduce_stage,
)
from tabml.orchestration.overrides import apply_param_overrides, override_for
from tests.workspace import EXAMPLE_PARAMS, example_orchestration

# Writes its first argument from the others; records the flow run id it was given, outside DVC's outs.
STEP_PY = """\
import os, sys
from pathlib import Path
out, *ins = sys.argv[1:]
if os.environ.get("TABML_FLOW_RUN_ID"):
    Path("seen").mkdir(exist_ok=True)
    (Path("seen") / out).write_text(os.environ["TABML_FLOW_RUN_ID"])
Path(out).write_text("".join(Path(p).read_text() for p in ins) + out + "\\n")
"""

# Declared out of dependency order on purpose: the plan must come from DVC's graph.
TOY_STAGES = {
    "third": {"cmd": "python step.py third.txt second.txt", "deps": ["step.py", "second.txt"], "outs": ["third.txt"]},
    "first": {"cmd": "python step.py first.txt raw.txt", "deps": ["step.py", "raw.txt"], "outs": ["first.txt"]},
    "second": {
        "cmd": "python step.py second.txt first.txt extra.txt",
        "deps": ["step.py", "first.txt", "extra.txt"],
        "outs": ["second.txt"],
    },
}
TOY_ORDER = ["first", "second", "third"]


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd)


def write_dvc_yaml(root: Path, stages: dict) -> None:
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))


def build_toy_template(root: Path) -> Path:
    """git + DVC initialised in `root` with the toy pipeline (first -> second -> third), nothing run yet."""
    site_cache = root.parent / f"{root.name}-site-cache"
    run("git", "init", "-q", cwd=root)
    # `dvc init` writes to the site cache before any config exists: point it away from /var/tmp/dvc.
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "init", "-q"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "DVC_SITE_CACHE_DIR": str(site_cache)},
    )
    assert proc.returncode == 0, proc.stderr
    dvc("config", "core.site_cache_dir", str(site_cache), cwd=root)
    (root / "step.py").write_text(STEP_PY)
    (root / "raw.txt").write_text("raw\n")
    (root / "extra.txt").write_text("extra\n")
    (root / "params.yaml").write_text(yaml.safe_dump({"orchestration": example_orchestration()}))
    write_dvc_yaml(root, TOY_STAGES)
    return root


def copy_repo(template: Path, dest: Path) -> Path:
    """A fresh copy of an initialised repo (copying is much faster than `dvc init`)."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def toy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_template(tmp_path_factory.mktemp("toy-template"))


@pytest.fixture
def toy(toy_template: Path, tmp_path: Path) -> Path:
    return copy_repo(toy_template, tmp_path / "toy")


def reproduce_all(root: Path, **kwargs: object) -> dict[str, str]:
    return {name: reproduce_stage(root, name, **kwargs).status for name in stage_order(root)}  # type: ignore[arg-type]


# --- planning: no `dvc init` needed -------------------------------------------------------------------


def test_order_follows_dependencies_and_keeps_declaration_order_for_ties(tmp_path: Path) -> None:
    stages = {
        "report": {"cmd": "echo", "deps": ["second.txt"], "outs": ["report.txt"]},
        "first": {"cmd": "echo", "outs": ["first.txt"]},
        "lone": {"cmd": "echo", "outs": ["lone.txt"]},
        "second": {"cmd": "echo", "deps": ["first.txt"], "outs": ["second.txt"]},
    }
    write_dvc_yaml(tmp_path, stages)
    # first and lone are both ready at the start: declaration order breaks the tie.
    assert stage_order(tmp_path) == ["first", "lone", "second", "report"]


def test_order_lists_only_the_root_dvc_yaml(tmp_path: Path) -> None:
    write_dvc_yaml(tmp_path, {"top": {"cmd": "echo", "outs": ["top.txt"]}})
    (tmp_path / "sub").mkdir()
    write_dvc_yaml(tmp_path / "sub", {"nested": {"cmd": "echo", "deps": ["../top.txt"], "outs": ["nested.txt"]}})
    assert stage_order(tmp_path) == ["top"]
    assert stage_order(tmp_path / "sub") == ["nested"]


def test_order_resolves_params_templating(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"a": {"out": "a.txt"}}))
    write_dvc_yaml(
        tmp_path,
        {
            "b": {"cmd": "echo", "deps": ["${a.out}"], "outs": ["b.txt"]},
            "a": {"cmd": "echo", "outs": ["${a.out}"]},
        },
    )
    assert stage_order(tmp_path) == ["a", "b"]


def test_invalid_pipeline_is_an_error_naming_the_file(tmp_path: Path) -> None:
    write_dvc_yaml(tmp_path, {"a": {"cmd": "echo", "outs": ["out"]}, "b": {"cmd": "echo", "outs": ["out/inner.txt"]}})
    with pytest.raises(PipelineDefinitionError, match=r"(?s)dvc\.yaml: DVC cannot build the pipeline.*overlap"):
        stage_order(tmp_path)


def test_missing_dvc_yaml_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no dvc\.yaml here"):
        stage_order(tmp_path)


# --- reproduction in a real git + DVC repo ------------------------------------------------------------


def test_first_run_runs_every_stage_then_nothing_is_rerun(toy: Path) -> None:
    assert reproduce_all(toy) == dict.fromkeys(TOY_ORDER, "ran")
    assert (toy / "third.txt").read_text() == "raw\nfirst.txt\nextra\nsecond.txt\nthird.txt\n"
    lock = yaml.safe_load((toy / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(TOY_ORDER)

    assert reproduce_all(toy) == dict.fromkeys(TOY_ORDER, "skipped")
    assert "up to date" in dvc("status", cwd=toy).stdout


def test_changed_dependency_reruns_only_its_stage_and_downstream(toy: Path) -> None:
    reproduce_all(toy)
    (toy / "extra.txt").write_text("extra, edited\n")
    assert reproduce_all(toy) == {"first": "skipped", "second": "ran", "third": "ran"}


def test_force_reruns_an_unchanged_stage(toy: Path) -> None:
    reproduce_all(toy)
    outcome = reproduce_stage(toy, "first", force=True)
    assert (outcome.name, outcome.status) == ("first", "ran")
    assert outcome.seconds > 0


def test_env_reaches_the_stage_command_and_does_not_leak(toy: Path) -> None:
    reproduce_stage(toy, "first", env={"TABML_FLOW_RUN_ID": "run-123"})
    assert (toy / "seen" / "first.txt").read_text() == "run-123"
    assert "TABML_FLOW_RUN_ID" not in os.environ


def test_works_from_another_working_directory(toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert reproduce_stage(toy, "first").status == "ran"
    assert Path.cwd() == elsewhere
    assert not (elsewhere / "first.txt").exists()


def test_failing_command_is_an_error_naming_the_stage_and_exit_code(toy: Path) -> None:
    stages = dict(TOY_STAGES, first=dict(TOY_STAGES["first"], cmd="python -c \"raise SystemExit('no raw data')\""))
    write_dvc_yaml(toy, stages)
    with pytest.raises(StageFailedError, match=r"stage 'first' failed: .*exited with 1") as caught:
        reproduce_stage(toy, "first")
    assert caught.value.stage == "first"
    assert caught.value.stderr_tail == "no raw data"  # the command's own message, not only DVC's
    assert not (toy / "dvc.lock").exists()


INTERRUPTED_STAGE = """\
import os, signal, sys
from tabml.core.errors import ExitCode
from tabml.core.stage import write_status
write_status("first", None)
signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's Ctrl-C, even if the test process ignores it
try:
    os.kill(os.getpid(), signal.SIGINT)
except KeyboardInterrupt:  # what tabml.core.stage.stage_main does with Ctrl-C
    write_status("first", ExitCode.INTERRUPTED, "interrupted")
    sys.exit(ExitCode.INTERRUPTED)
"""


def test_ctrl_c_in_the_command_interrupts_instead_of_failing_so_it_is_not_retried(toy: Path) -> None:
    with pytest.raises(KeyboardInterrupt, match="stage 'first' was interrupted"):
        failing(toy, INTERRUPTED_STAGE)


def test_unknown_stage_is_an_error_naming_it(toy: Path) -> None:
    with pytest.raises(StageFailedError, match=r"stage 'fourth' failed"):
        reproduce_stage(toy, "fourth")


# --- planning with status: what the flow skips without starting a task --------------------------------


def test_plan_marks_everything_up_to_date_after_a_run_and_nothing_when_forced(toy: Path) -> None:
    assert plan_pipeline(toy) == PipelinePlan(TOY_ORDER, frozenset())  # nothing ran yet
    reproduce_all(toy)
    assert plan_pipeline(toy) == PipelinePlan(TOY_ORDER, frozenset(TOY_ORDER))
    assert plan_pipeline(toy, force=True) == PipelinePlan(TOY_ORDER, frozenset())


def test_plan_forces_an_unchanged_stage_whose_effect_outside_dvc_is_missing_and_what_follows_it(toy: Path) -> None:
    reproduce_all(toy)
    seen: list[str] = []

    def missing(stage: str) -> str | None:
        seen.append(stage)
        return "its package is not in this workspace" if stage == TOY_ORDER[1] else None

    plan = plan_pipeline(toy, missing_effect=missing)
    assert plan.forced == {TOY_ORDER[1]: "its package is not in this workspace"}
    assert plan.up_to_date == {TOY_ORDER[0]}  # the one after it runs too, as after any stage that runs
    assert seen == TOY_ORDER[:2]  # asked only of stages DVC found unchanged with nothing upstream to run


def test_plan_runs_a_changed_stage_and_everything_downstream_of_it(toy: Path) -> None:
    reproduce_all(toy)
    (toy / "extra.txt").write_text("extra, edited\n")  # a dep of second only; third is unchanged *so far*
    assert plan_pipeline(toy).up_to_date == {"first"}


def test_plan_agrees_with_what_dvc_then_does(toy: Path) -> None:
    reproduce_all(toy)
    (toy / "extra.txt").write_text("extra, edited\n")
    plan = plan_pipeline(toy)
    done = reproduce_all(toy)
    assert {name for name, status in done.items() if status == "skipped"} == plan.up_to_date


def with_params(toy: Path, params: dict) -> None:
    """The toy pipeline with params: second reads a plain key, a list and a list item."""
    keys = ["model.lr", "model.layers", "slices.0"]
    write_dvc_yaml(toy, dict(TOY_STAGES, second=dict(TOY_STAGES["second"], params=keys)))
    raw = yaml.safe_load((toy / "params.yaml").read_text())
    (toy / "params.yaml").write_text(yaml.safe_dump({**raw, **params}))


@pytest.mark.parametrize(
    "edit",
    [
        {"model": {"lr": 0.02, "layers": [8, 4]}},  # a plain key
        {"model": {"lr": 0.01, "layers": [8, 2]}},  # a list value
        {"model": {"lr": 0.01, "layers": [8, 4]}, "slices": ["age"]},  # a list index (DVC's own reader)
    ],
)
def test_plan_reads_params_as_dvc_does(toy: Path, edit: dict) -> None:
    with_params(toy, {"model": {"lr": 0.01, "layers": [8, 4]}, "slices": ["sex"]})
    reproduce_all(toy)
    assert plan_pipeline(toy).up_to_date == set(TOY_ORDER)
    with_params(toy, edit)
    assert plan_pipeline(toy).up_to_date == {"first"}  # second's params changed; third comes after it
    assert reproduce_all(toy)["second"] == "ran"  # and DVC agrees that second has to run


def test_plan_reports_each_up_to_date_stage_as_it_finds_it_in_run_order(toy: Path) -> None:
    reproduce_all(toy)
    (toy / "extra.txt").write_text("extra, edited\n")
    found: list[tuple[str, float]] = []
    plan = plan_pipeline(toy, on_up_to_date=lambda name, seconds: found.append((name, seconds)))
    assert [name for name, _ in found] == ["first"] and found[0][1] >= 0
    reproduce_all(toy)
    found.clear()
    plan = plan_pipeline(toy, on_up_to_date=lambda name, seconds: found.append((name, seconds)))
    assert [name for name, _ in found] == TOY_ORDER == plan.order


def test_plan_leaves_dvcs_params_reader_as_it_was(toy: Path) -> None:
    from dvc.dependency import param

    before = param.read_param_file
    plan_pipeline(toy)
    assert param.read_param_file is before


# --- which failures a retry can fix --------------------------------------------------------------------


def failing(toy: Path, script: str) -> StageFailedError:
    write_dvc_yaml(toy, dict(TOY_STAGES, first=dict(TOY_STAGES["first"], cmd="python fail.py")))
    (toy / "fail.py").write_text(script)
    with pytest.raises(StageFailedError) as caught:
        reproduce_stage(toy, "first")
    return caught.value


REPORTING_STAGE = """\
import sys
from tabml.core.errors import ExitCode
from tabml.core.stage import write_status
write_status("first", None)
print("[first] FAILED: raw.txt: 3 rows have no target", file=sys.stderr)
print("\\n".join(f"  row {i}: missing" for i in range(500)), file=sys.stderr)
write_status("first", ExitCode.{code}, "raw.txt: 3 rows have no target")
sys.exit(ExitCode.{code})
"""


def test_the_stages_exit_code_decides_whether_it_is_retried(toy: Path) -> None:
    bad_data = failing(toy, REPORTING_STAGE.replace("{code}", "BAD_INPUT"))
    assert (bad_data.exit_code, bad_data.retryable, is_retryable(bad_data)) == (ExitCode.BAD_INPUT, False, False)
    assert bad_data.reason == "raw.txt: 3 rows have no target" and bad_data.stderr_tail == ""  # said in one line
    transient = failing(toy, REPORTING_STAGE.replace("{code}", "TRANSIENT"))
    assert (transient.exit_code, transient.retryable) == (ExitCode.TRANSIENT, True)


def test_a_crash_or_a_killed_command_is_retryable(toy: Path) -> None:
    exc = failing(toy, "raise MemoryError('out of memory')\n")  # an unexpected exception: exit 1, no status
    assert exc.retryable and is_retryable(exc) and "MemoryError" in exc.stderr_tail
    killed = failing(
        toy,
        "import os, signal\nfrom tabml.core.stage import write_status\n"
        "write_status('first', None)\nos.kill(os.getpid(), signal.SIGKILL)\n",
    )
    assert killed.retryable and "killed" in killed.reason


def test_dvc_busy_with_another_repro_is_transient(toy: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from dvc.repo import Repo, lock_repo\nimport sys, time\n"
            "with Repo('.') as r, lock_repo(r):\n    print('locked', flush=True); time.sleep(60)\n",
        ],
        cwd=toy,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StageFailedError) as caught:
            reproduce_stage(toy, "first")
        assert caught.value.retryable and caught.value.exit_code is None
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_retry_policy_for_other_failures(toy: Path) -> None:
    assert is_retryable(TimeoutError("timed out"))
    assert not is_retryable(PipelineDefinitionError("bad dvc.yaml"))
    assert not is_retryable(KeyboardInterrupt())
    (toy / "raw.txt").unlink()  # DVC refuses the stage itself: its dependency is missing
    with pytest.raises(StageFailedError) as caught:
        reproduce_stage(toy, "first")
    assert not caught.value.retryable and "raw.txt" in caught.value.reason


# --- parameter overrides, as `dvc exp run -S` -----------------------------------------------------------


@pytest.fixture
def project_params(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE_PARAMS, tmp_path / "params.yaml")
    return tmp_path


def test_overrides_are_written_into_params_yaml_keeping_its_comments(project_params: Path) -> None:
    path = project_params / "data, v2.csv"
    apply_param_overrides(
        project_params, ["train.lr=0.003", "train.hidden_sizes=[256,128]", override_for("data.path", str(path))]
    )
    text = (project_params / "params.yaml").read_text()
    params = yaml.safe_load(text)
    assert params["train"]["lr"] == 0.003 and params["train"]["hidden_sizes"] == [256, 128]
    assert params["data"]["path"] == str(path)
    assert "# CSV or Parquet landing-zone table" in text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.learning_rate=0.1", r"not valid `dvc exp run -S` overrides.*train\.learning_rate"),
        ("train.lr=-1", r"train\.lr: Input should be greater than 0"),
        ("train.lr==", r"not valid `dvc exp run -S` overrides"),
        ("data.path=s3://user:hunter2@bucket/t.csv", "looks like a secret"),
        ("+tracking.api_key=abc", "looks like a secret"),
    ],
)
def test_bad_overrides_are_refused_and_params_yaml_is_left_as_it_was(
    project_params: Path, override: str, message: str
) -> None:
    before = (project_params / "params.yaml").read_text()
    with pytest.raises(ParamsError, match=message):
        apply_param_overrides(project_params, ["train.dropout=0.2", override])
    assert (project_params / "params.yaml").read_text() == before


@pytest.mark.parametrize("value", ["data/x.csv", "a,b=c [1].csv", "it's.csv", "C:\\data\\t.csv", "ends-with\\"])
def test_override_for_quotes_any_path(project_params: Path, value: str) -> None:
    apply_param_overrides(project_params, [override_for("data.path", value)])
    assert yaml.safe_load((project_params / "params.yaml").read_text())["data"]["path"] == value
