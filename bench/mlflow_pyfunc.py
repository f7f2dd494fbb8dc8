"""The MLflow baseline of bench/serving.py: the same registered network as an MLflow pyfunc (models from code, so
nothing is pickled), run by `mlflow models serve` in its own venv (mlflow is a bench-only dependency).

    BENCH_VENV/bin/python bench/mlflow_pyfunc.py save OUT_DIR PACKAGE_DIR    # PYTHONPATH: this project
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd


class TabmlPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
    """tabml's scorer (its own preprocessing state, network and threshold) behind MLflow's pyfunc interface."""

    def load_context(self, context: Any) -> None:
        from tabml.data.preprocessing import PreprocessState
        from tabml.evaluation.scorer import load_scorer

        folder = Path(context.artifacts["package"])
        state = PreprocessState.model_validate_json((folder / "preprocess_state.json").read_text())
        threshold = json.loads((folder / "metrics.json").read_text()).get("threshold")
        self.scorer = load_scorer(folder, state, threshold)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from tabml.predict.batch import prediction_columns

        scores = self.scorer.scores(model_input)
        return pd.DataFrame(prediction_columns(self.scorer.state, self.scorer.threshold, scores))


def save(out: Path, package: Path) -> None:
    mlflow.pyfunc.save_model(path=str(out), python_model=__file__, artifacts={"package": str(package)})


if __name__ == "__main__":
    save(Path(sys.argv[2]), Path(sys.argv[3]))
else:
    mlflow.models.set_model(TabmlPyfunc())
