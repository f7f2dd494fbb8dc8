"""Packages registered by earlier versions of the code keep loading, verifying and scoring the same numbers.

tests/fixtures/registry-v0 is a credit model line written by the code before the package layout changed
(issue 13), with the predictions that code made for 60 rows.
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tabml.predict.batch import predict_file
from tabml.registry.store import load_package

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "registry-v0"


def test_a_package_written_before_the_layout_change_verifies_and_scores_the_same(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(FIXTURE / "credit", registry / "credit")
    package = load_package(registry, "credit")  # every checksum verified
    assert package.entry.version == 1 and package.entry.stage == "production"
    done = predict_file(registry, "credit", FIXTURE / "rows.csv", tmp_path / "scored.csv")
    assert done.rows == 60
    now, then = pd.read_csv(tmp_path / "scored.csv"), pd.read_csv(FIXTURE / "scored-by-v0.csv")
    assert (now["prediction"] == then["prediction"]).all()
    np.testing.assert_allclose(now["proba_bad"], then["proba_bad"], atol=1e-6)
