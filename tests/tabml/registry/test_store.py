import json
import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tabml.registry import cli as registry_cli
from tabml.registry import index as registry_index
from tabml.registry import store as registry
from tabml.registry.index import RegistryError, RegistryIndex, assign_stage, rollback_target, stage_moves
from tabml.registry.store import load_package, locked, model_dir, publish, read_index

NAME = "credit"
SOURCES = {"model.safetensors": b"\x00weights\x01" * 50, "model_config.json": b'{"kind": "mlp"}', "history.csv": b"e\n"}


def sources(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in SOURCES.items():
        (root / name).write_bytes(data)
    return {name: root / name for name in SOURCES}


def register(reg: Path, src: Path, auroc: float = 0.8, timeout: float = 30, stage: str = "production") -> int:
    def documents(version: int) -> dict[str, object]:
        return {"lineage.json": {"model": {"name": NAME, "version": version}}}

    entry, _, _ = publish(reg, NAME, sources(src), documents, {"auroc": auroc}, stage=stage, lock_timeout=timeout)  # type: ignore[arg-type]
    return entry.version


def test_publish_writes_a_complete_package_and_moves_production(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    assert register(reg, tmp_path / "src", 0.7) == 1
    files = sources(tmp_path / "src")
    entry, before, after = publish(
        reg, NAME, files, lambda v: {"lineage.json": {"v": v}}, {"auroc": 0.8}, stage="production", lock_timeout=5
    )
    assert (entry.version, entry.stage, registry_index.production_version(before)) == (2, "production", 1)
    assert stage_moves(before, after) == [(1, "production", "archived"), (2, None, "production")]

    index = json.loads((reg / NAME / "index.json").read_text())
    assert [(v["version"], v["stage"]) for v in index["versions"]] == [(1, "archived"), (2, "production")]
    v1 = index["versions"][0]
    assert [(e["stage"], e["action"]) for e in v1["stages"]] == [("production", "register"), ("archived", "register")]
    assert v1["metrics"] == {"auroc": 0.7} and v1["path"] == "versions/v1" and v1["created_at"].endswith("Z")

    package = load_package(reg, NAME)  # production by default
    assert package.entry.version == 2
    manifest = json.loads((package.path / "MANIFEST.json").read_text())
    assert set(manifest["sha256"]) == {*SOURCES, "lineage.json"}
    assert registry.sha256_file(package.path / "MANIFEST.json") == entry.manifest_sha256
    assert json.loads((package.path / "lineage.json").read_text()) == {"v": 2}
    assert load_package(reg, NAME, version=1).entry.stage == "archived"
    assert load_package(reg, NAME, stage="archived").entry.version == 1
    assert not list((reg / NAME).glob(".staging-*"))


def test_non_finite_metrics_are_stored_as_null_so_index_json_stays_standard(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    publish(
        reg,
        NAME,
        sources(tmp_path / "src"),
        lambda v: {},
        {"auroc": float("nan"), "f1": 0.5},
        stage=None,
        lock_timeout=5,
    )

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    index = json.loads((reg / NAME / "index.json").read_text(), parse_constant=refuse)
    assert index["versions"][0]["metrics"] == {"auroc": None, "f1": 0.5}
    assert index["versions"][0]["stage"] is None and index["versions"][0]["stages"] == []


@pytest.mark.parametrize("how", ["flip a byte", "extra file", "missing file", "edit manifest"])
def test_a_tampered_package_is_refused(tmp_path: Path, how: str) -> None:
    reg = tmp_path / "registry"
    register(reg, tmp_path / "src")
    path = reg / NAME / "versions" / "v1"
    if how == "flip a byte":
        data = bytearray((path / "model.safetensors").read_bytes())
        data[5] ^= 0x01
        (path / "model.safetensors").write_bytes(bytes(data))
        match = r"model\.safetensors: sha256 does not match MANIFEST\.json"
    elif how == "extra file":
        (path / "evil.py").write_text("import os")
        match = "files differ from MANIFEST.json: \\['evil.py'\\]"
    elif how == "missing file":
        (path / "history.csv").unlink()
        match = "files differ from MANIFEST.json"
    else:
        manifest = json.loads((path / "MANIFEST.json").read_text())
        manifest["sha256"]["model.safetensors"] = "0" * 64
        (path / "MANIFEST.json").write_text(json.dumps(manifest))
        match = "MANIFEST.json is missing or does not match index.json"
    with pytest.raises(RegistryError, match=match) as info:
        load_package(reg, NAME, version=1)
    assert "do not use this package" in str(info.value)


def test_a_crash_mid_copy_leaves_no_version_and_production_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = tmp_path / "registry"
    register(reg, tmp_path / "src")
    index_before = (reg / NAME / "index.json").read_bytes()
    real_copy, calls = shutil.copyfileobj, []

    def copy_then_crash(src, dst, length=0):  # the second file is half written when the "disk" fills up
        calls.append(src)
        if len(calls) == 2:
            dst.write(src.read(4))
            raise OSError("disk full (simulated)")
        real_copy(src, dst, length)

    monkeypatch.setattr(shutil, "copyfileobj", copy_then_crash)
    with pytest.raises(OSError, match="disk full"):
        register(reg, tmp_path / "src", 0.9)
    monkeypatch.undo()

    assert sorted(p.name for p in (reg / NAME / "versions").iterdir()) == ["v1"]
    assert not list((reg / NAME).glob(".staging-*"))
    assert (reg / NAME / "index.json").read_bytes() == index_before
    assert load_package(reg, NAME).entry.version == 1
    assert register(reg, tmp_path / "src") == 2  # the registry still works


def test_an_orphan_version_folder_is_skipped_and_invisible(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    register(reg, tmp_path / "src")
    (reg / NAME / "versions" / "v2").mkdir()  # a crash between the rename and the index update
    with pytest.raises(RegistryError, match="credit has no v2"):
        load_package(reg, NAME, version=2)
    assert register(reg, tmp_path / "src") == 3


def _register_many(args: tuple[str, str, int, Any]) -> list[int]:
    reg, src, n, barrier = args
    barrier.wait(timeout=60)  # all processes start registering together
    return [register(Path(reg), Path(src) / str(i), timeout=60) for i in range(n)]


def test_concurrent_registrations_get_distinct_versions_and_a_valid_index(tmp_path: Path) -> None:
    reg, n_procs, per_proc = tmp_path / "registry", 4, 5
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(n_procs) as pool:
        barrier = manager.Barrier(n_procs)
        results = pool.map(
            _register_many, [(str(reg), str(tmp_path / f"src{p}"), per_proc, barrier) for p in range(n_procs)]
        )
    versions = sorted(v for got in results for v in got)
    assert versions == list(range(1, n_procs * per_proc + 1))
    index = read_index(reg / NAME)
    assert [v.version for v in index.versions] == versions
    assert [v.version for v in index.versions if v.stage == "production"] == [n_procs * per_proc]
    for version in versions:
        load_package(reg, NAME, version=version)
    assert not list((reg / NAME).glob(".staging-*")) and not list((reg / NAME).glob(".index.json.*"))


def test_a_held_lock_times_out_with_a_clear_error(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    with locked(model_dir(reg, NAME), timeout=1), pytest.raises(RegistryError) as info:
        register(reg, tmp_path / "src", timeout=0.2)
    assert "could not lock the registry within 0.2s" in str(info.value)
    assert "register.lock_timeout_seconds" in str(info.value)
    assert register(reg, tmp_path / "src") == 1  # released afterwards


def _index(*versions: int) -> RegistryIndex:
    index = RegistryIndex(name=NAME)
    for i, version in enumerate(versions):
        entry = registry_index.VersionEntry(
            version=version, path=f"versions/v{version}", created_at="t", metrics={}, manifest_sha256="x"
        )
        index = assign_stage(index.model_copy(update={"versions": [*index.versions, entry]}), version, f"t{i:03}")
    return index


def test_rollback_walks_back_through_previous_production_versions() -> None:
    index = _index(1, 2, 3)
    assert rollback_target(index) == 2
    index = assign_stage(index, 2, "t100", "rollback")
    assert rollback_target(index) == 1  # v3 was rolled back: not a target any more
    index = assign_stage(index, 1, "t101", "rollback")
    with pytest.raises(RegistryError, match="only production version"):
        rollback_target(index)
    index = assign_stage(index, 3, "t102")  # promoting again makes v3 eligible once it is replaced
    assert rollback_target(index) == 1
    with pytest.raises(RegistryError, match="has no v9"):
        assign_stage(index, 9, "t103")


def cli(*args: str, reg: Path) -> int:
    where = ["--params", "absent.yaml", "--registry-dir", str(reg), "--name", NAME, "--lock-timeout", "5"]
    return registry_cli.main([*where, *args])


def test_cli_list_show_promote_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = tmp_path / "registry"
    for auroc in (0.7, 0.8, 0.75):
        register(reg, tmp_path / "src", auroc)

    assert cli("list", reg=reg) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("credit (") and "3 version(s)" in out[0]
    assert "production" in out[3] and "auroc=0.75" in out[3] and "archived" in out[1]

    assert cli("show", "--version", "v2", "--json", reg=reg) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["version"], shown["stage"], shown["verified"]) == (2, "archived", True)
    assert cli("show", "--version", "v2", reg=reg) == 0  # for a person: one summary, not the raw record
    text = capsys.readouterr().out
    assert text.startswith("credit v2: archived") and "test metrics:" in text and "auroc" in text
    assert "verified against MANIFEST.json" in text and "raw record: add --json" in text
    assert len(text.splitlines()) < 60 and "{" not in text

    assert cli("promote", "2", reg=reg) == 0
    assert capsys.readouterr().out.strip() == (
        "promoted credit v2 to production: v2 archived -> production, v3 production -> archived"
    )
    assert load_package(reg, NAME).entry.version == 2

    assert cli("rollback", reg=reg) == 0
    assert capsys.readouterr().out.strip() == (
        "rolled back credit: v2 production -> archived, v3 archived -> production"
    )
    assert cli("rollback", reg=reg) == 0  # v2 was rolled back, so the one before v3 is next
    assert "v1 archived -> production, v3 production -> archived" in capsys.readouterr().out
    stages = [e.action for e in read_index(reg / NAME).get(1).stages]  # type: ignore[union-attr]
    assert stages == ["register", "register", "rollback"]


def test_cli_failures_exit_65_with_a_readable_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = tmp_path / "registry"
    register(reg, tmp_path / "src")
    (reg / NAME / "versions" / "v1" / "history.csv").write_text("tampered")
    assert cli("show", reg=reg) == 65
    assert "history.csv: sha256 does not match" in capsys.readouterr().err
    assert cli("promote", "7", reg=reg) == 65
    assert "credit has no v7" in capsys.readouterr().err
    assert cli("rollback", reg=reg) == 65
    assert "only production version" in capsys.readouterr().err
    assert registry_cli.main(["--params", str(tmp_path / "absent.yaml"), "list"]) == 65
    assert "file not found" in capsys.readouterr().err


def test_cli_runs_as_a_module(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    register(reg, tmp_path / "src")
    args = ["--registry-dir", str(reg), "--name", NAME, "--params", str(tmp_path / "none.yaml"), "list"]
    done = subprocess.run([sys.executable, "-m", "tabml.registry", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "v1" in done.stdout and "production" in done.stdout


def test_staging_holds_one_challenger_and_never_takes_production_away(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    register(reg, tmp_path / "src")  # v1 production
    register(reg, tmp_path / "src", stage="staging")  # v2 staging
    register(reg, tmp_path / "src", stage="staging")  # v3 staging: v2 archived
    index = read_index(reg / NAME)
    assert [(v.version, v.stage) for v in index.versions] == [(1, "production"), (2, "archived"), (3, "staging")]
    assert load_package(reg, NAME, stage="staging").entry.version == 3
    assert load_package(reg, NAME).entry.version == 1  # production is what a caller gets by default
    with pytest.raises(RegistryError, match="v1 is production; moving it to staging would leave no production"):
        assign_stage(index, 1, "t", stage="staging")
    before, after = registry.promote(reg, NAME, 3, lock_timeout=5)
    assert stage_moves(before, after) == [(1, "production", "archived"), (3, "staging", "production")]
    assert read_index(reg / NAME).in_stage("staging") is None
    assert registry_index.rollback_target(after) == 1


def test_cli_show_prints_lineage_and_gate_report_and_promotes_to_staging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "registry"
    register(reg, tmp_path / "src")
    register(reg, tmp_path / "src")
    assert cli("promote", "1", "--stage", "staging", reg=reg) == 0
    assert capsys.readouterr().out.strip() == "promoted credit v1 to staging: v1 archived -> staging"
    assert cli("show", "--stage", "staging", "--json", reg=reg) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 1 and shown["lineage"] == {"model": {"name": NAME, "version": 1}}
    assert "MANIFEST.json" in shown["files"] and "gate_report" not in shown  # no such document in this package
    assert cli("promote", "2", "--stage", "staging", reg=reg) == 65
    assert "would leave no production version" in capsys.readouterr().err
