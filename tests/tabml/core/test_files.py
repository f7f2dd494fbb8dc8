from pathlib import Path

from tabml.core.files import read_json_object, sha256_file, write_json_atomic


def test_read_json_object_tolerates_absent_broken_and_non_object_files(tmp_path: Path) -> None:
    good, broken, listed = tmp_path / "good.json", tmp_path / "broken.json", tmp_path / "list.json"
    good.write_text('{"success": true}')
    broken.write_text("{not json")
    listed.write_text("[1, 2]")
    assert read_json_object(good) == {"success": True}
    assert read_json_object(broken) is None
    assert read_json_object(listed) is None
    assert read_json_object(tmp_path / "absent.json") is None
    assert read_json_object(None) is None


def test_atomic_json_leaves_no_temporary_file_and_hashes_are_sha256(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "a.json", {"k": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
