"""Micro-batching: concurrent requests are scored as one batch and each gets exactly its own rows back."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabml.predict.batch import prediction_frame
from tabml.serve.batching import MicroBatcher, Predictions
from tabml.serve.checks import Policy
from tabml.serve.encoding import batch_encode
from tabml.serve.models import LoadedModel, ServedModels
from tests.serve_process import FIXTURE

ROWS = pd.read_csv(FIXTURE / "rows.csv")


@pytest.fixture
def model(tmp_path: Path) -> LoadedModel:
    shutil.copytree(FIXTURE / "credit", tmp_path / "credit")
    models = ServedModels(tmp_path, Policy("warn", "warn", 0.5))
    models.refresh()
    loaded = models.get("credit")
    assert loaded is not None
    return loaded


def score_all(batcher: MicroBatcher, model: LoadedModel, step: int) -> list[Predictions]:
    parts = [
        batch_encode(ROWS.iloc[i : i + step], model.scorer.state, model.plan.policy).arrays for i in range(0, 60, step)
    ]

    async def all_at_once() -> list[Predictions]:
        return await asyncio.gather(*(batcher.score(model, part) for part in parts))

    try:
        return asyncio.run(all_at_once())
    finally:
        batcher.close()


def test_concurrent_requests_share_one_batch_and_get_their_own_rows(model: LoadedModel) -> None:
    batcher = MicroBatcher(window_ms=0, max_batch=512)
    outs = score_all(batcher, model, 5)
    assert batcher.batches == 1 and [len(o["prediction"]) for o in outs] == [5] * 12
    expected = prediction_frame(model.scorer, ROWS, "credit", 1)
    assert np.concatenate([o["prediction"] for o in outs]).tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(np.concatenate([o["proba_bad"] for o in outs]), expected["proba_bad"], atol=1e-6)


def test_max_batch_splits_the_queue(model: LoadedModel) -> None:
    batcher = MicroBatcher(window_ms=0, max_batch=20)
    outs = score_all(batcher, model, 10)
    assert batcher.batches == 3 and [len(o["prediction"]) for o in outs] == [10] * 6
