"""`registry show` without --json: a real stored package (lineage, gate report) rendered in one screen."""

from __future__ import annotations

import shutil
from pathlib import Path

from tabml.registry.cli import main as registry_cli

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "registry-v0"


def test_show_summarises_stage_metrics_gate_lineage_and_files(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    registry = shutil.copytree(FIXTURE, tmp_path / "registry")
    where = ["--params", str(tmp_path / "absent.yaml"), "--registry-dir", str(registry), "--name", "credit"]
    assert registry_cli([*where, "show", "--version", "1"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("credit v1: production  (registered 2026-")
    assert "gate: passed on auroc=0.8369" in text and "ok   [registration] auroc=0.8369 >= minimum 0.6: ok" in text
    assert "git commit   23762597d393adc165d26c2bc91beeeec8b90a99" in text
    assert "data/snapshot/accepted.parquet: 4454 rows" in text
    assert "verified against MANIFEST.json" in text and "  model.safetensors" in text
    assert len(lines) < 60 and max(map(len, lines)) <= 120
