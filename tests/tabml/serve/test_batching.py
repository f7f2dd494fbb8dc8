"""Micro-batching: concurrent requests are scored as one batch and each gets exactly its own rows back."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tabml.predict.batch import prediction_frame
from tabml.serve.batching import MicroBatcher
from tabml.serve.models import ServedModels
from tests.serve_process import FIXTURE


def test_concurrent_requests_share_one_batch_and_get_their_own_rows(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE / "credit", tmp_path / "credit")
    models = ServedModels(tmp_path)
    models.refresh()
    model = models.get("credit")
    assert model is not None
    rows = pd.read_csv(FIXTURE / "rows.csv")
    parts = [rows.iloc[i : i + 5].reset_index(drop=True) for i in range(0, 60, 5)]
    seen: list[int] = []
    batcher = MicroBatcher(window_ms=0, max_batch=512, on_scored=lambda m, f, o: seen.append(len(f)))

    async def all_at_once() -> list[pd.DataFrame]:
        return await asyncio.gather(*(batcher.score(model, part) for part in parts))

    outs = asyncio.run(all_at_once())
    batcher.close()
    assert batcher.batches == 1 and seen == [5] * 12
    expected = prediction_frame(model.scorer, rows, "credit", 1)
    together = pd.concat(outs, ignore_index=True)
    assert together["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(together["proba_bad"], expected["proba_bad"], atol=1e-6)


def test_max_batch_splits_the_queue(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE / "credit", tmp_path / "credit")
    models = ServedModels(tmp_path)
    models.refresh()
    model = models.get("credit")
    assert model is not None
    rows = pd.read_csv(FIXTURE / "rows.csv")
    batcher = MicroBatcher(window_ms=0, max_batch=20)

    async def all_at_once() -> list[pd.DataFrame]:
        return await asyncio.gather(*(batcher.score(model, rows.iloc[i : i + 10]) for i in range(0, 60, 10)))

    outs = asyncio.run(all_at_once())
    batcher.close()
    assert batcher.batches == 3 and [len(o) for o in outs] == [10] * 6
