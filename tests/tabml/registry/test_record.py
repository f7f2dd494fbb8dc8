"""The registration record and what a workspace holds of it: a fresh clone has the record (git), not the registry."""

from __future__ import annotations

from pathlib import Path

from tabml.registry.record import missing_here, write_record


def record(version: int | None) -> dict[str, object]:
    where = f"registry/credit/versions/v{version}" if version else None
    return {"dataset": "credit", "version": version, "registry_path": where, "manifest_sha256": "ab", "gto": None}


def test_a_record_is_missing_here_until_this_workspace_registered_it_and_holds_its_package(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "registration.json"
    write_record(path, record(1))
    (tmp_path / "registry/credit/versions/v1").mkdir(parents=True)
    assert missing_here(path, tmp_path) is None  # registered here: the facts beside it, the package in place

    (tmp_path / "registry/credit/versions/v1").rmdir()  # someone removed the registry
    assert missing_here(path, tmp_path) == (
        "registration.json records credit v1 at registry/credit/versions/v1, which is not there"
    )
    facts = path.with_name("registration.run.json")
    facts.unlink()  # a fresh clone: the record came from git, the per-run facts did not
    assert missing_here(path, tmp_path) == (
        "registration.json records credit v1, which no register stage made in this workspace"
    )
    write_record(tmp_path / "other.json", record(2))  # facts of another version do not count
    facts.write_bytes((tmp_path / "other.run.json").read_bytes())
    assert "no register stage made" in str(missing_here(path, tmp_path))


def test_nothing_is_missing_where_nothing_was_registered_or_there_is_no_record(tmp_path: Path) -> None:
    path = tmp_path / "registration.json"
    assert missing_here(path, tmp_path) is None
    write_record(path, record(None))  # a refused model, or an experiment that registers nothing
    path.with_name("registration.run.json").unlink()
    assert missing_here(path, tmp_path) is None
    s3 = {**record(3), "registry_path": "s3://bucket/registry/credit/versions/v3"}
    write_record(path, s3)
    assert missing_here(path, tmp_path) is None  # a bucket registry is not checked by path
