from pathlib import Path

from tabml.tracking.sync import OfflineRun, find_offline_runs, plan_sync


def offline(run_id: str, started: str, synced: bool = False) -> OfflineRun:
    return OfflineRun(Path(f"offline-run-{started}-{run_id}"), run_id, started, synced)


def test_sync_plan_groups_each_runs_pending_parts_in_start_order() -> None:
    parts = [
        offline("b", "20300101_100500"),
        offline("a", "20300101_100000", synced=True),
        offline("a", "20300101_100200"),
        offline("a", "20300101_100100"),
    ]
    plan = plan_sync(parts)
    assert {k: [p.started for p in v] for k, v in plan.items()} == {
        "a": ["20300101_100100", "20300101_100200"],
        "b": ["20300101_100500"],
    }
    assert plan_sync([offline("a", "20300101_100000", synced=True)]) == {}


def test_offline_folders_are_found_with_wandbs_own_synced_marker(tmp_path: Path) -> None:
    for name, marked in (("offline-run-20300101_100000-abc", True), ("offline-run-20300101_100100-abc", False)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "run-abc.wandb").write_bytes(b"")
        if marked:
            (folder / "run-abc.wandb.synced").write_bytes(b"")
    (tmp_path / "run-20300101_100200-xyz").mkdir()  # an online run: not ours to sync
    (tmp_path / "offline-run-20300101_100300-empty").mkdir()  # no transaction log (a crashed init)
    (tmp_path / "latest-run").symlink_to(tmp_path / "offline-run-20300101_100100-abc")
    found = find_offline_runs(tmp_path)
    assert [(r.run_id, r.started, r.synced) for r in found] == [
        ("abc", "20300101_100000", True),
        ("abc", "20300101_100100", False),
    ]
