"""The index is a cache of the version folders and the event log: lost, corrupt or stale, it is rebuilt (with a
warning, and by `registry repair`), never reset; the log itself refuses edits."""

import json
import logging
import shutil
from pathlib import Path

import pytest

from tabml.registry import cli as registry_cli
from tabml.registry import store as registry
from tabml.registry.events import EVENTS_FILE, read_events, replay
from tabml.registry.index import RegistryError, production_version
from tabml.registry.store import load_package, model_dir, publish, read_index
from tests.tabml.registry.test_store import NAME, register, sources

LEGACY = Path(__file__).resolve().parents[2] / "fixtures" / "registry-v0"


def line_with_history(reg: Path, src: Path) -> list[tuple[int, str | None, list[str]]]:
    """v1..v4 registered, v2 promoted back and rolled back, v4 staging: every kind of stage event."""
    for auroc in (0.7, 0.8, 0.75):
        register(reg, src, auroc)
    register(reg, src, 0.6, stage="staging")
    registry.promote(reg, NAME, 2, lock_timeout=5)
    registry.rollback(reg, NAME, lock_timeout=5)
    return history(reg)


def history(reg: Path) -> list[tuple[int, str | None, list[str]]]:
    index = read_index(reg / NAME)
    return [(v.version, v.stage, [f"{e.stage}/{e.action}" for e in v.stages]) for v in index.versions]


def cli(*args: str, reg: Path) -> int:
    where = ["--params", "absent.yaml", "--registry-dir", str(reg), "--name", NAME, "--lock-timeout", "5"]
    return registry_cli.main([*where, *args])


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage", "stale"])
def test_a_lost_corrupt_or_stale_index_is_rebuilt_with_every_version_and_stage(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "registry"
    index_file = reg / NAME / "index.json"
    if damage == "stale":  # a crash after the log append, before the index write
        line_with_history(reg, tmp_path / "src")
        old = index_file.read_bytes()
        registry.promote(reg, NAME, 1, lock_timeout=5)
        expected = history(reg)
        index_file.write_bytes(old)
    else:
        expected = line_with_history(reg, tmp_path / "src")
        sha_before = load_package(reg, NAME).entry.manifest_sha256
        {
            "delete": lambda: index_file.unlink(),
            "truncate": lambda: index_file.write_bytes(index_file.read_bytes()[:40]),
            "garbage": lambda: index_file.write_bytes(b"\x00\xff not json"),
        }[damage]()
        assert load_package(reg, NAME).entry.manifest_sha256 == sha_before
    with caplog.at_level(logging.WARNING):
        assert history(reg) == expected  # readers rebuild in memory
    assert "rebuilt 4 version(s) from" in caplog.text and "events.jsonl" in caplog.text

    assert cli("list", reg=reg) == 0
    assert "4 version(s)" in capsys.readouterr().out
    assert cli("repair", reg=reg) == 0
    assert capsys.readouterr().out.startswith(f"repaired {NAME}: index.json ")
    assert json.loads(index_file.read_text())["log_head"] == read_events(reg / NAME)[0][-1]["sha"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert history(reg) == expected
    assert caplog.text == ""  # repaired: no more warnings
    assert cli("verify", reg=reg) == 0
    assert capsys.readouterr().out.startswith(f"verified {NAME}: 4 version(s), production v")


def test_after_a_lost_index_the_next_registration_sees_production_and_gets_the_next_version(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    line_with_history(reg, tmp_path / "src")
    (reg / NAME / "index.json").unlink()
    seen = []

    def stage(index):  # what the register stage decides from: the production version
        seen.append(production_version(index))
        return "staging"

    entry, _, after = publish(reg, NAME, sources(tmp_path / "s2"), lambda v: {}, {}, stage=stage, lock_timeout=5)
    assert (entry.version, entry.stage, seen) == (5, "staging", [3])
    assert [v.version for v in after.versions] == [1, 2, 3, 4, 5]
    assert read_index(reg / NAME) == after  # the write persisted the rebuilt index


def test_the_index_equals_the_replayed_log_after_every_kind_of_write(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    line_with_history(reg, tmp_path / "src")
    events, _ = read_events(reg / NAME)
    assert [e["action"] for e in events] == ["register"] * 4 + ["promote", "rollback"]
    assert replay(NAME, events) == read_index(reg / NAME)


def test_an_edited_log_line_is_refused_and_a_torn_last_line_is_cut_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = tmp_path / "registry"
    line_with_history(reg, tmp_path / "src")
    log_file = reg / NAME / EVENTS_FILE
    good = log_file.read_bytes()

    log_file.write_bytes(good + b'{"action": "promote", "at": "x", "mo')  # a write cut short by a crash
    with caplog.at_level(logging.WARNING):
        assert read_events(reg / NAME)[0][-1]["action"] == "rollback"
    assert "line 7 is incomplete" in caplog.text
    registry.promote(reg, NAME, 2, lock_timeout=5)  # the next append cuts the torn line off
    events, _ = read_events(reg / NAME)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6, 7] and events[-1]["action"] == "promote"

    lines = log_file.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace('"moves":[[2,"production"]', '"moves":[[4,"production"]')
    log_file.write_text("".join(lines))
    (reg / NAME / "index.json").unlink()
    with pytest.raises(RegistryError, match="events.jsonl: line 5 fails its checksum chain") as info:
        read_index(reg / NAME)
    assert "restore events.jsonl from a backup" in str(info.value)
    assert cli("list", reg=reg) == 65


def test_a_registry_from_before_the_log_keeps_working_and_starts_its_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = tmp_path / "registry"
    shutil.copytree(LEGACY / "credit", reg / "credit")
    index = read_index(reg / "credit")
    assert not (reg / "credit" / EVENTS_FILE).exists() and index.in_stage("production") is not None
    registry.repair(reg, "credit", lock_timeout=5)  # the log starts with an import of the index
    events, _ = read_events(reg / "credit")
    assert [e["action"] for e in events] == ["import"] and replay("credit", events).versions == index.versions
    (reg / "credit" / "index.json").unlink()
    assert read_index(reg / "credit").versions == index.versions

    shutil.rmtree(reg)  # an old registry that lost its index: the folders are all there is
    shutil.copytree(LEGACY / "credit", reg / "credit")
    (reg / "credit" / "index.json").unlink()
    with caplog.at_level(logging.WARNING):
        rebuilt = read_index(reg / "credit")
    assert "the version folders alone (no event log)" in caplog.text
    assert [(v.version, v.stage, v.manifest_sha256) for v in rebuilt.versions] == [
        (v.version, None, v.manifest_sha256) for v in index.versions
    ]
    assert rebuilt.versions[0].metrics == {k: v for k, v in index.versions[0].metrics.items() if v is not None}


def test_an_identical_model_is_recorded_against_its_version(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    files = sources(tmp_path / "src")
    first, _, _ = publish(reg, NAME, files, lambda v: {}, {}, stage="production", lock_timeout=5)
    identity = ["model.safetensors", "model_config.json"]
    again, before, after = publish(
        reg, NAME, files, lambda v: {}, {}, stage="staging", lock_timeout=5, identity=identity
    )
    assert again.version == first.version == 1 and before.get(1) is not None
    assert [v.version for v in after.versions] == [1] and len(after.versions[0].reruns) == 1
    assert after.versions[0].stage == "production"  # untouched
    (tmp_path / "src" / "history.csv").write_text("other curves, same model\n")
    assert publish(reg, NAME, files, lambda v: {}, {}, stage=None, lock_timeout=5, identity=identity)[0].version == 1
    (tmp_path / "src" / "model.safetensors").write_bytes(b"new weights")
    assert publish(reg, NAME, files, lambda v: {}, {}, stage=None, lock_timeout=5, identity=identity)[0].version == 2
    assert sorted(p.name for p in (reg / NAME / "versions").iterdir()) == ["v1", "v2"]


@pytest.mark.parametrize("name", ["../../x", "a/b", "Credit", ""])
def test_a_model_name_outside_the_pattern_is_refused(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RegistryError, match="not a model name"):
        model_dir(tmp_path, name)
    with pytest.raises(SystemExit) as exit_info:
        registry_cli.main(["--params", "absent.yaml", "--registry-dir", str(tmp_path), "--name", name, "list"])
    assert exit_info.value.code == 2 and "not a model name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing opened, locked or created


def test_a_reader_during_a_write_in_flight_sees_the_logged_state_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = tmp_path / "registry"
    line_with_history(reg, tmp_path / "src")
    index_file = reg / NAME / "index.json"
    old = index_file.read_bytes()
    registry.promote(reg, NAME, 1, lock_timeout=5)
    expected = history(reg)
    index_file.write_bytes(old)  # as between a writer's log append and its index write
    with registry.locked(reg / NAME, timeout=5), caplog.at_level(logging.WARNING):
        assert history(reg) == expected
    assert caplog.text == ""
    with caplog.at_level(logging.WARNING):  # no writer any more: a crash left it behind
        assert history(reg) == expected
    assert "index.json is behind events.jsonl" in caplog.text


def test_a_log_that_lost_its_end_is_refused_rather_than_dropping_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "registry"
    expected = line_with_history(reg, tmp_path / "src")
    log_file = reg / NAME / EVENTS_FILE
    lines = log_file.read_text().splitlines(keepends=True)
    log_file.write_text("".join(lines[:2]))  # an older backup of the log
    with pytest.raises(RegistryError, match="index.json includes events that events.jsonl lacks"):
        read_index(reg / NAME)
    log_file.rename(log_file.with_name("events.jsonl.old"))  # what the message says to do
    assert cli("repair", reg=reg) == 0 and history(reg) == expected
    assert [e["action"] for e in read_events(reg / NAME)[0]] == ["import"]
