"""`make plots` asks DVC for exactly the plots whose rows exist, on the real dvc.yaml."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tools.plot_targets import plot_targets

PROJECT = Path(__file__).resolve().parents[2]


def workspace(tmp_path: Path, files: dict[str, object]) -> Path:
    shutil.copy2(PROJECT / "dvc.yaml", tmp_path / "dvc.yaml")
    for name, rows in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rows if isinstance(rows, str) else json.dumps(rows))
    return tmp_path


def test_a_binary_run_gets_its_plots_and_no_residuals_and_an_empty_slices_file_is_left_out(tmp_path: Path) -> None:
    row = [{"x": 1}]
    binary = {f"reports/evaluate/plots/{n}.json": row for n in ("roc", "precision_recall", "confusion", "calibration")}
    root = workspace(
        tmp_path,
        {**binary, "reports/evaluate/plots/slices.json": [], "models/train/history.csv": "epoch,train_loss\n1,0.5\n"},
    )
    assert plot_targets(root) == ["training_curves", "roc", "precision_recall", "confusion", "calibration"]


def test_a_regression_run_gets_residuals_and_predicted_vs_actual_only(tmp_path: Path) -> None:
    root = workspace(tmp_path, {"reports/evaluate/plots/residuals.json": [{"actual": 1, "predicted": 1}]})
    assert plot_targets(root) == ["residuals", "predicted_vs_actual"]


def test_nothing_to_plot_is_one_line_and_exit_65(tmp_path: Path) -> None:
    root = workspace(tmp_path, {})
    done = subprocess.run(
        [sys.executable, "-m", "tools.plot_targets", "--root", str(root)], capture_output=True, text=True, cwd=PROJECT
    )
    assert done.returncode == 65 and done.stderr.strip() == "no plot has rows yet: run the pipeline first (make run)"


def test_every_plot_of_dvc_yaml_names_both_axes_and_a_title() -> None:
    import yaml

    for entry in yaml.safe_load((PROJECT / "dvc.yaml").read_text())["plots"]:
        for plot_id, spec in entry.items():
            assert {"title", "x_label", "y_label"} <= set(spec), plot_id
