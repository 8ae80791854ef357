"""Adaptive batching, without HTTP: concurrent submits share model calls, answers go to the right caller."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from modeldeck.serving.batching import Batcher


class CountingModel:
    def __init__(self, fail_on: float | None = None, drop_row: bool = False) -> None:
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on
        self.drop_row = drop_row

    def __call__(self, X: np.ndarray, names: list[str] | None) -> list[np.ndarray]:
        self.calls.append(X.shape[0])
        self.threads.add(threading.current_thread().name)
        if self.fail_on is not None and (self.fail_on == X).any():
            raise ValueError("bad row")
        out = X.sum(axis=1)
        if self.drop_row and X.shape[0] > 1:
            out = out[:-1]
        return [out, X * 2]


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def rows(i: int, n: int = 1) -> np.ndarray:
    return np.full((n, 3), float(i))


async def _submit_all(b: Batcher, items: list[np.ndarray]) -> list[list[np.ndarray]]:
    b.start()
    try:
        return list(await asyncio.gather(*(b.submit(x, None) for x in items)))
    finally:
        await b.stop()


def test_lone_request_is_called_at_once() -> None:
    model = CountingModel()
    [out] = run(_submit_all(Batcher(model, max_wait_s=1.0), [rows(1)]))  # type: ignore[misc]
    assert model.calls == [1]
    np.testing.assert_array_equal(out[0], [3.0])


def test_concurrent_requests_share_one_call_and_get_their_own_rows() -> None:
    model = CountingModel()
    items = [rows(i, n=1 + i % 3) for i in range(20)]
    outs = run(_submit_all(Batcher(model, max_rows=1000), items))
    assert model.calls == [sum(x.shape[0] for x in items)]
    for x, out in zip(items, outs, strict=True):  # type: ignore[call-overload]
        np.testing.assert_array_equal(out[0], x.sum(axis=1))
        np.testing.assert_array_equal(out[1], x * 2)


def test_batches_are_bounded_by_max_rows() -> None:
    model = CountingModel()
    run(_submit_all(Batcher(model, max_rows=4), [rows(i, 2) for i in range(5)]))
    assert model.calls == [4, 4, 2]


def test_request_larger_than_max_rows_goes_alone() -> None:
    model = CountingModel()
    run(_submit_all(Batcher(model, max_rows=4), [rows(1, 10), rows(2, 1)]))
    assert model.calls == [10, 1]


def test_different_layouts_are_not_mixed() -> None:
    model = CountingModel()
    items = [rows(1), np.ones((1, 5)), rows(2), np.ones((1, 5))]
    outs = run(_submit_all(Batcher(model), items))
    assert sorted(model.calls) == [2, 2]
    assert [o[1].shape for o in outs] == [(1, 3), (1, 5), (1, 3), (1, 5)]  # type: ignore[attr-defined]


def test_not_batchable_means_one_call_per_request() -> None:
    model = CountingModel()
    run(_submit_all(Batcher(model, batchable=False), [rows(i) for i in range(4)]))
    assert model.calls == [1, 1, 1, 1]


def test_one_bad_request_does_not_fail_its_neighbours() -> None:
    model = CountingModel(fail_on=3.0)

    async def go() -> list[object]:
        b = Batcher(model)
        b.start()
        try:
            return list(await asyncio.gather(*(b.submit(rows(i), None) for i in range(5)), return_exceptions=True))
        finally:
            await b.stop()

    results = run(go())
    assert isinstance(results[3], ValueError)  # type: ignore[index]
    for i in (0, 1, 2, 4):
        np.testing.assert_array_equal(results[i][0], [3.0 * i])  # type: ignore[index]
    assert model.calls == [5, 1, 1, 1, 1, 1]


def test_wrong_row_count_falls_back_to_one_call_per_request() -> None:
    model = CountingModel(drop_row=True)
    outs = run(_submit_all(Batcher(model), [rows(i) for i in range(3)]))
    assert model.calls == [3, 1, 1, 1]
    assert [o[0].tolist() for o in outs] == [[0.0], [3.0], [6.0]]  # type: ignore[attr-defined]


def test_waits_for_requests_known_to_be_coming() -> None:
    model = CountingModel()

    async def go() -> None:
        b = Batcher(model, max_wait_s=0.5)
        b.start()
        b.coming = 1  # a request is being decoded
        first = b.submit(rows(1), None)

        async def late() -> None:
            await asyncio.sleep(0.01)
            b.coming = 0
            await b.submit(rows(2), None)

        await asyncio.gather(first, late())
        await b.stop()

    run(go())
    assert model.calls == [2]


def test_slow_models_run_in_a_worker_thread() -> None:
    model = CountingModel()
    seen: list[str] = []
    run(_submit_all(Batcher(model, in_thread=True, thread_init=lambda: seen.append("init")), [rows(1)]))
    assert seen == ["init"]
    assert all(name.startswith("predict") for name in model.threads)


def test_batch_sizes_are_reported() -> None:
    sizes: list[int] = []
    run(_submit_all(Batcher(CountingModel(), on_batch=sizes.append), [rows(i) for i in range(3)]))
    assert sizes == [3]


def test_stop_fails_queued_requests() -> None:
    async def go() -> None:
        b = Batcher(CountingModel())  # never started
        fut = b.submit(rows(1), None)
        await b.stop()
        with pytest.raises(RuntimeError, match="shutting down"):
            await fut

    run(go())


def test_after_a_shared_call_it_waits_for_as_many_requests() -> None:
    model = CountingModel()

    async def go() -> tuple[float, float]:
        b = Batcher(model, max_wait_s=0.2)
        b.start()
        await asyncio.gather(*(b.submit(rows(i), None) for i in range(3)))  # one call, 3 requests
        first = b.submit(rows(7), None)  # alone: the two others are expected

        async def later() -> None:
            await asyncio.sleep(0.02)
            await asyncio.gather(b.submit(rows(8), None), b.submit(rows(9), None))

        t0 = time.perf_counter()
        await asyncio.gather(first, later())
        took = time.perf_counter() - t0
        lone = time.perf_counter()
        await b.submit(rows(1), None)  # the last call had 3: waits the full 0.2 s once ...
        await b.submit(rows(1), None)  # ... and then no more
        await b.stop()
        return took, time.perf_counter() - lone

    took, lone = run(go())  # type: ignore[misc]
    assert model.calls == [3, 3, 1, 1]
    assert 0.015 < took < 0.15
    assert 0.15 < lone < 0.35
