import warnings
from pathlib import Path

import pytest

from tabml.core.ops_params import TrackingParams
from tabml.tracking.model_registry import link_to_model_registry, run_id_of


def tracking(tmp_path: Path, mode: str = "offline") -> TrackingParams:
    return TrackingParams(project="tabml-tests", mode=mode, dir=tmp_path / ".wandb")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_offline_or_disabled_skips_the_model_registry_without_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("WANDB_MODE", mode)
    linked = link_to_model_registry(tracking(tmp_path, mode), None, tmp_path, "credit", 3, "production")
    assert linked == {"linked": False, "reason": f"W&B mode is {mode}: the model registry needs online mode"}
    assert not (tmp_path / ".wandb").exists()  # no run was even started


def test_online_with_an_unreachable_server_is_skipped_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "3")
    package = tmp_path / "v1"
    package.mkdir()
    (package / "model.safetensors").write_bytes(b"w")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        linked = link_to_model_registry(tracking(tmp_path, "online"), "run-1", package, "credit", 1, "staging")
    assert linked["linked"] is False and linked["reason"]


def test_the_run_id_comes_from_run_info_when_train_had_one(tmp_path: Path) -> None:
    (tmp_path / "run_info.json").write_text('{"wandb_run_id": "abc123"}')
    assert run_id_of(tmp_path / "run_info.json") == "abc123"
    (tmp_path / "run_info.json").write_text('{"wandb_run_id": null}')
    assert run_id_of(tmp_path / "run_info.json") is None
    assert run_id_of(tmp_path / "absent.json") is None
