"""Micro-batching: requests that arrive while the scorer is busy (or within `serve.batch_window_ms` of each other
when others are on their way) are scored as one frame, up to `serve.max_batch` rows, then split back per request.

One worker thread runs the network, so torch is never entered twice at once and the event loop keeps accepting
requests while a batch is scored; a lone request with nothing else arriving is scored on the loop itself. Rows
are grouped by the model object they were checked against, so a hot reload between a request's checks and its
scoring never scores it with another version.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tabml.data.preprocessing import SplitArrays
from tabml.predict.batch import prediction_columns
from tabml.serve.models import LoadedModel
from tabml.training.trained_model import score_arrays

Predictions = dict[str, np.ndarray]  # tabml.predict.batch.prediction_columns of one request's rows


@dataclass
class Pending:
    model: LoadedModel
    arrays: SplitArrays
    future: asyncio.Future[Predictions]

    @property
    def rows(self) -> int:
        return len(self.arrays.x_num)


def score_group(model: LoadedModel, parts: list[SplitArrays]) -> list[Predictions]:
    """Pure: score the encoded rows of one model as one batch and split the predictions back."""
    if len(parts) == 1:
        whole = parts[0]
    else:
        x_num, x_cat = np.concatenate([p.x_num for p in parts]), np.concatenate([p.x_cat for p in parts])
        whole = SplitArrays(x_num=x_num, x_cat=x_cat, y=np.zeros(len(x_num), np.float32))
    state = model.scorer.state
    scores = score_arrays(model.scorer.net, whole, state.task, state.target_mean, state.target_std)
    columns = prediction_columns(state, model.scorer.threshold, scores)
    out, start = [], 0
    for part in parts:
        end = start + len(part.x_num)
        out.append({name: values[start:end] for name, values in columns.items()})
        start = end
    return out


class MicroBatcher:
    """Collects concurrent requests into batches; `await score(model, arrays)` gives those rows' predictions."""

    def __init__(self, window_ms: float, max_batch: int) -> None:
        self.window, self.max_batch = window_ms / 1000, max_batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer")
        self.queue: deque[Pending] = deque()
        self.arriving = 0  # requests being read and checked: more rows are on their way
        self.batches = 0
        self._worker: asyncio.Task[None] | None = None

    async def score(self, model: LoadedModel, arrays: SplitArrays) -> Predictions:
        future: asyncio.Future[Predictions] = asyncio.get_running_loop().create_future()
        self.queue.append(Pending(model, arrays, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run())
        return await future

    def _take(self, taken: list[Pending], rows: int) -> int:
        while self.queue and (not taken or rows + self.queue[0].rows <= self.max_batch):
            item = self.queue.popleft()
            taken.append(item)
            rows += item.rows
        return rows

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.queue:
            taken: list[Pending] = []
            rows = self._take(taken, 0)
            if self.window > 0 and self.arriving > 0 and rows < self.max_batch:
                await asyncio.sleep(self.window)
                rows = self._take(taken, rows)
            groups: dict[int, list[Pending]] = {}
            for item in taken:
                groups.setdefault(id(item.model), []).append(item)
            for items in groups.values():
                await self._score_items(loop, items)

    async def _score_items(self, loop: asyncio.AbstractEventLoop, items: list[Pending]) -> None:
        model, parts = items[0].model, [i.arrays for i in items]
        try:
            if len(items) == 1 and self.arriving == 0 and items[0].rows <= self.max_batch:
                outs = score_group(model, parts)  # alone: two thread hand-offs cost more than the scoring
            else:
                outs = await loop.run_in_executor(self.executor, score_group, model, parts)
        except Exception as exc:  # noqa: BLE001 - handed to each request, which answers it
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        self.batches += 1
        for item, out in zip(items, outs, strict=True):
            if not item.future.done():
                item.future.set_result(out)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
