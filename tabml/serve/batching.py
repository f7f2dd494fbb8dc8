"""Micro-batching: requests that arrive while the scorer is busy (or within `serve.batch_window_ms` of each other
when others are on their way) are scored as one frame, up to `serve.max_batch` rows, then split back per request.

One worker thread runs the network, so torch is never entered twice at once and the event loop keeps accepting
requests while a batch is scored. Rows are grouped by the model object they were checked against, so a hot
reload between a request's checks and its scoring never scores it with another version.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from tabml.predict.batch import prediction_frame
from tabml.serve.models import LoadedModel


@dataclass
class Pending:
    model: LoadedModel
    frame: pd.DataFrame
    future: asyncio.Future[pd.DataFrame]


Scored = Callable[[LoadedModel, pd.DataFrame, pd.DataFrame], None]  # (model, features, predictions) per request


def score_group(model: LoadedModel, frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Pure: score the frames of one model as one batch and split the predictions back."""
    whole = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    out = prediction_frame(model.scorer, whole, model.name, model.version)
    bounds, start = [], 0
    for frame in frames:
        bounds.append((start, start + len(frame)))
        start += len(frame)
    return [out.iloc[a:b].reset_index(drop=True) for a, b in bounds]


class MicroBatcher:
    """Collects concurrent requests into batches; `await score(model, frame)` gives that frame's predictions."""

    def __init__(self, window_ms: float, max_batch: int, on_scored: Scored | None = None) -> None:
        self.window, self.max_batch, self.on_scored = window_ms / 1000, max_batch, on_scored
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer")
        self.queue: deque[Pending] = deque()
        self.arriving = 0  # requests being read and checked: more rows are on their way
        self.batches = 0
        self._worker: asyncio.Task[None] | None = None

    async def score(self, model: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
        future: asyncio.Future[pd.DataFrame] = asyncio.get_running_loop().create_future()
        self.queue.append(Pending(model, frame, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run())
        return await future

    def _take(self, taken: list[Pending], rows: int) -> int:
        while self.queue and (not taken or rows + len(self.queue[0].frame) <= self.max_batch):
            item = self.queue.popleft()
            taken.append(item)
            rows += len(item.frame)
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
        model = items[0].model
        try:
            outs = await loop.run_in_executor(self.executor, score_group, model, [i.frame for i in items])
        except Exception as exc:  # noqa: BLE001 - handed to each request, which answers it
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        self.batches += 1
        for item, out in zip(items, outs, strict=True):
            if not item.future.done():
                item.future.set_result(out)
            if self.on_scored is not None:
                self.on_scored(model, item.frame, out)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
