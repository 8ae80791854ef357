"""The sampler against a real replica exposing Prometheus metrics and the fake runtime's usage."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gateway.gw_support import Echo, serve
from modeldeck.metrics.sampler import PREDICTIONS_METRIC, Sampler, parse_counter
from modeldeck.metrics.store import MetricsStore
from modeldeck.runtimes.base import ReplicaSpec
from modeldeck.runtimes.fake import FakeRuntime, fake_address


def test_parse_counter_sums_every_series_of_the_metric() -> None:
    text = (
        "# HELP modeldeck_model_predictions_total rows\n"
        "# TYPE modeldeck_model_predictions_total counter\n"
        'modeldeck_model_predictions_total{protocol="v1"} 12\n'
        'modeldeck_model_predictions_total{protocol="v2",x="a}b"} 3.0 1700000000\n'
        "modeldeck_model_predictions_total_created 1.7e9\n"
        "other_metric 99\n"
    )
    assert parse_counter(text, PREDICTIONS_METRIC) == 15.0
    assert parse_counter("other 1\n", PREDICTIONS_METRIC) is None


@pytest.fixture
def replica() -> Iterator[tuple[Echo, str]]:
    app = Echo("r0")
    with serve(app) as address:
        yield app, address


def _runtime_with(deployment: str) -> FakeRuntime:
    runtime = FakeRuntime()
    runtime.start_replica(ReplicaSpec(deployment_id=deployment, version=1, index=0, image="img", model_uri=None,
                                      env={}, cpu=1, memory=1 << 30, gpu=0))
    return runtime


def test_points_from_counters_scrapes_and_usage(replica: tuple[Echo, str]) -> None:
    echo, address = replica
    store = MetricsStore()
    runtime = _runtime_with("d1")
    name = runtime.observe("d1")[0].name
    targets: dict[str, list[tuple[str, str, float | None]]] = {}
    sampler = Sampler(store, runtime, lambda: targets)
    targets["d1"] = [(name, address, sampler.since - 3600.0)]

    async def scenario() -> None:
        await sampler.start()
        try:
            # The replica ran before this sampler: what it answered then is not this interval's work.
            echo.predictions = 500
            stats = store.stats("d1")
            stats.record(200, 0.002)  # the gateway's counters start with the process: counted
            await sampler.sample_once(now=1_000_000.0)
            for _ in range(9):
                stats.record(200, 0.004)
            stats.record(502, 0.001)
            echo.predictions = 550
            await sampler.sample_once(now=1_000_005.0)
            echo.predictions = 20  # the replica restarted: its counter began again
            await sampler.sample_once(now=1_000_010.0)
            for t in range(1_000_015, 1_000_065, 5):  # into the next minute: a coarse point
                await sampler.sample_once(now=float(t))
        finally:
            await sampler.stop()

    asyncio.run(scenario())
    series = store.series["d1"]
    start, first, second = series.fine[0], series.fine[1], series.fine[2]
    assert (start.t, start.requests, start.predictions, start.duration) == (1_000_000, 1, 0, 5.0)
    assert (first.t, first.requests, first.errors_5xx, first.predictions) == (1_000_005, 10, 1, 550 - 500)
    assert first.duration == 5.0
    assert first.p50 is not None and 0.003 <= first.p50 <= 0.004
    assert second.predictions == 20 and second.requests == 0 and second.p50 is None
    assert set(first.replicas) == {name} and first.replicas[name].memory == 0
    assert len(series.coarse) == 1
    minute = series.coarse[0]
    assert (minute.requests, minute.predictions) == (11, 70)
    assert minute.t == 1_000_020 and minute.duration == 25.0
    assert store.replica_usage["d1"][name].cpu == 0.0


def test_traffic_before_a_deployments_first_sample_is_counted(replica: tuple[Echo, str]) -> None:
    """A deployment routed between two ticks, used at once: its first point holds that traffic, and a
    replica that appeared after the first tick counts all its predictions."""
    echo, address = replica
    store = MetricsStore()
    targets: dict[str, list[tuple[str, str, float | None]]] = {}
    sampler = Sampler(store, FakeRuntime(), lambda: targets)

    async def scenario() -> None:
        await sampler.start()
        try:
            await sampler.sample_once(now=2000.0)
            targets["new"] = [("new-g1-r0", address, sampler.since + 1.0)]
            for _ in range(22):
                store.stats("new").record(200, 0.003)
            echo.predictions = 27
            await sampler.sample_once(now=2005.0)
        finally:
            await sampler.stop()

    asyncio.run(scenario())
    [point] = store.series["new"].fine
    assert (point.requests, point.predictions, point.duration) == (22, 27, 5.0)


def test_deployments_that_left_the_route_table_are_forgotten() -> None:
    store = MetricsStore()
    store.stats("gone").record(200, 0.01)
    targets: dict[str, list[tuple[str, str, float | None]]] = {"kept": []}
    sampler = Sampler(store, FakeRuntime(), lambda: targets)

    async def scenario() -> None:
        await sampler.start()
        try:
            await sampler.sample_once(now=1000.0)
        finally:
            await sampler.stop()

    asyncio.run(scenario())
    assert "gone" not in store.requests and "gone" not in store.series
    assert "kept" in store.series


def test_an_unreachable_replica_leaves_a_gap_not_an_error() -> None:
    from gateway.gw_support import closed_address

    store = MetricsStore()
    targets = {"d1": [("r0", closed_address(), None), ("r1", fake_address("r1"), None)]}
    sampler = Sampler(store, FakeRuntime(), lambda: targets, scrape_timeout_s=1.0)

    async def scenario() -> None:
        await sampler.start()
        try:
            await sampler.sample_once(now=1000.0)
            await sampler.sample_once(now=1005.0)
        finally:
            await sampler.stop()

    asyncio.run(scenario())
    assert store.series["d1"].fine[0].predictions == 0
