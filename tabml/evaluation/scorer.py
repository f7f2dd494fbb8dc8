"""Score raw table rows with a model and its own preprocessing state.

The champion/challenger gate and batch prediction both start from raw rows: a model registered months ago
may have been fitted with other encodings, so its own preprocess_state.json transforms the rows, never
today's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tabml.data.preprocessing import PreprocessState, transform
from tabml.data.target import TargetEncoding, encode_target
from tabml.training.model import TabularNet
from tabml.training.trained_model import load_model, score_arrays


@dataclass(frozen=True)
class Scorer:
    """A network, the preprocessing state it was trained with, and its binary decision threshold."""

    net: TabularNet
    state: PreprocessState
    threshold: float | None

    def missing_columns(self, frame: pd.DataFrame) -> list[str]:
        return [c.name for c in self.state.input_schema if c.name not in frame.columns]

    def target(self, frame: pd.DataFrame) -> np.ndarray:
        """The target column encoded with this model's own labels (-1: a label it does not know)."""
        s = self.state
        encoding = TargetEncoding(task=s.task, column=s.target, labels=s.labels, mean=s.target_mean, std=s.target_std)
        return encode_target(frame[encoding.column], encoding)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive), class probabilities or values in target units (tabml.training.trained_model conventions)."""
        s = self.state
        arrays = transform(frame, s, np.zeros(len(frame), dtype=np.float32))
        return score_arrays(self.net, arrays, s.task, s.target_mean, s.target_std)


def load_scorer(model_dir: Path, state: PreprocessState, threshold: float | None) -> Scorer:
    """Rebuild the network of a model folder (safetensors + JSON) beside its state and threshold.

    Raises ValueError (pydantic) or KeyError when a file does not match what this code reads.
    """
    return Scorer(load_model(model_dir), state, threshold)
