"""Adaptive batching: concurrent requests share one model call.

Requests queue; one worker task takes what is queued (up to `max_rows` rows, same column layout and
feature names), makes ONE predict call and hands each request its rows. Before a call it may wait, at
most `max_wait_s`, for requests it has reason to expect: as many as the previous call served (the
clients it answered come back together) or those already received and being decoded. A lone client
(previous call: one request) never waits; when concurrency drops, one call waits once.
Fast models run inline on the event loop (a thread hand-off costs more than the call); slow ones in
one worker thread, while the loop keeps reading and queueing the next batch.
If a batched call fails, or answers a different number of rows, each request is retried alone so one
bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

PredictFn = Callable[[np.ndarray, list[str] | None], list[np.ndarray]]
Result = list[np.ndarray]


def _release(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Item:
    __slots__ = ("X", "fut", "key", "names", "rows")

    def __init__(self, X: np.ndarray, names: list[str] | None, fut: asyncio.Future[Result]) -> None:
        self.X = X
        self.names = names
        self.fut = fut
        self.rows = X.shape[0] if X.ndim else 1
        self.key = (X.shape[1:], X.dtype.str, tuple(names) if names else None)


class Batcher:
    def __init__(
        self,
        predict: PredictFn,
        max_rows: int = 256,
        max_wait_s: float = 0.002,
        batchable: bool = True,
        in_thread: bool = False,
        thread_init: Callable[[], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.predict = predict
        self.max_rows = max(1, max_rows)
        self.max_wait_s = max(0.0, max_wait_s)
        self.batchable = batchable
        self.on_batch = on_batch
        self.coming = 0  # requests received and being decoded: they will submit soon
        self._pending: deque[_Item] = deque()
        self._pending_rows = 0
        self._last_n = 1  # requests in the previous call
        self._wake: asyncio.Future[None] | None = None
        self._enough: asyncio.Future[None] | None = None
        self._target = 0
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="predict", initializer=thread_init) if in_thread else None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for item in self._pending:
            if not item.fut.done():
                item.fut.set_exception(RuntimeError("server shutting down"))
        self._pending.clear()
        self._pending_rows = 0
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def submit(self, X: np.ndarray, names: list[str] | None) -> asyncio.Future[Result]:
        """Queue rows for prediction; the future gets one array per model output (this request's rows)."""
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        item = _Item(X, names, fut)
        self._pending.append(item)
        self._pending_rows += item.rows
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        enough = self._enough
        if (
            enough is not None
            and not enough.done()
            and (len(self._pending) >= self._target or self._pending_rows >= self.max_rows)
        ):
            enough.set_result(None)
        return fut

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run a one-off call (a raw payload for custom code) where predictions run: in the worker thread
        when there is one (so custom code is never called concurrently), else inline."""
        if self._pool is not None:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        return fn()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        pending = self._pending
        while True:
            if not pending:
                self._wake = loop.create_future()
                await self._wake
                self._wake = None
            if self.batchable and self.max_wait_s:
                target = max(self._last_n, len(pending) + self.coming)
                if len(pending) < target and self._pending_rows < self.max_rows:
                    await self._wait_for(loop, target)
            batch = self._take()
            self._last_n = len(batch)
            try:
                await self._predict_batch(batch)
            except Exception as e:  # never let the worker die
                for item in batch:
                    if not item.fut.done():
                        item.fut.set_exception(e)

    async def _wait_for(self, loop: asyncio.AbstractEventLoop, target: int) -> None:
        enough: asyncio.Future[None] = loop.create_future()
        self._enough, self._target = enough, target
        timer = loop.call_later(self.max_wait_s, _release, enough)
        try:
            await enough
        finally:
            timer.cancel()
            self._enough = None

    def _take(self) -> list[_Item]:
        pending = self._pending
        first = pending.popleft()
        self._pending_rows -= first.rows
        batch = [first]
        if not self.batchable or not pending:
            return batch
        rows, key, skipped = first.rows, first.key, []
        while pending and rows < self.max_rows:
            item = pending[0]
            if rows + item.rows > self.max_rows:
                break
            pending.popleft()
            if item.key == key:
                batch.append(item)
                rows += item.rows
                self._pending_rows -= item.rows
            else:
                skipped.append(item)
        pending.extendleft(reversed(skipped))
        return batch

    async def _call(self, X: np.ndarray, names: list[str] | None) -> Result:
        if self.on_batch is not None:
            self.on_batch(X.shape[0] if X.ndim else 1)
        if self._pool is not None:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self.predict, X, names)
        return self.predict(X, names)

    async def _predict_batch(self, batch: list[_Item]) -> None:
        if len(batch) == 1:
            item = batch[0]
            try:
                out = await self._call(item.X, item.names)
            except Exception as e:
                if not item.fut.done():  # cancelled meanwhile: its neighbours must still get answers
                    item.fut.set_exception(e)
                return
            if not item.fut.done():
                item.fut.set_result(out)
            return
        X = np.concatenate([item.X for item in batch])
        total = X.shape[0]
        try:
            outs = await self._call(X, batch[0].names)
            ok = all(getattr(o, "shape", ())[:1] == (total,) for o in outs)
        except Exception:
            ok = False
        if not ok:  # alone, each request gets its own answer or its own error
            for item in batch:
                await self._predict_batch([item])
            return
        start = 0
        for item in batch:
            end = start + item.rows
            if not item.fut.done():
                item.fut.set_result([o[start:end] for o in outs])
            start = end
