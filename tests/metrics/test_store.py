"""Counters, histogram quantiles and the time-series rings."""

from __future__ import annotations

import pytest

from modeldeck.metrics.store import (
    COARSE_POINTS,
    FINE_POINTS,
    LATENCY_BOUNDS,
    Counters,
    MetricsStore,
    Point,
    RequestStats,
    Series,
    point_between,
    quantile,
)


def test_buckets_are_upper_bounds_inclusive() -> None:
    stats = RequestStats()
    stats.record(200, 0.001)
    stats.record(200, 0.0010001)
    stats.record(200, 1000.0)
    i = LATENCY_BOUNDS.index(0.001)
    assert stats.buckets[i] == 1
    assert stats.buckets[i + 1] == 1
    assert stats.buckets[-1] == 1
    assert stats.count == 3 and stats.codes == {200: 3}


def test_quantiles_are_within_a_bucket_of_the_truth() -> None:
    stats = RequestStats()
    values = [i / 1000 for i in range(1, 1001)]  # 1 ms .. 1 s, uniform
    for v in values:
        stats.record(200, v)
    for q in (0.5, 0.95, 0.99):
        estimate = quantile(stats.buckets, q)
        truth = values[int(q * len(values)) - 1]
        assert estimate is not None
        assert abs(estimate - truth) / truth < 0.25, (q, estimate, truth)
    assert quantile([0] * len(stats.buckets), 0.5) is None


def test_point_from_counter_deltas() -> None:
    stats = RequestStats()
    for _ in range(8):
        stats.record(200, 0.010)
    before = stats.snapshot()
    for _ in range(3):
        stats.record(200, 0.100)
    stats.record(404, 0.001)
    stats.record(503, 0.002)
    after = stats.snapshot()
    after = Counters(after.requests, after.errors_4xx, after.errors_5xx, after.buckets, predictions=70)
    point = point_between(Counters(before.requests, 0, 0, before.buckets, predictions=20), after, t=100,
                          duration=5.0, replicas={})
    assert (point.requests, point.errors_4xx, point.errors_5xx, point.predictions) == (5, 1, 1, 50)
    assert point.p50 is not None and 0.075 <= point.p50 <= 0.1  # three of five took 100 ms
    assert point.p99 is not None and point.p99 <= 0.1


def test_a_counter_reset_counts_from_zero() -> None:
    old = RequestStats()
    for _ in range(10):
        old.record(200, 0.01)
    fresh = RequestStats()
    fresh.record(500, 0.01)
    point = point_between(old.snapshot(), fresh.snapshot(), t=1, duration=5.0, replicas={})
    assert (point.requests, point.errors_5xx) == (1, 1)


def _point(t: int) -> Point:
    return Point(t, 1, 0, 0, 0, 5.0, None, None, None, {})


@pytest.mark.parametrize(("window", "expected"), [("5m", 60), ("1h", FINE_POINTS), ("24h", COARSE_POINTS)])
def test_windows_cut_the_rings(window: str, expected: int) -> None:
    store = MetricsStore()
    series = store.series["d1"] = Series()
    now = 10_000_000
    for t in range(now - 3 * 3600, now + 1, 5):  # three hours of fine points: the ring keeps one
        series.fine.append(_point(t))
    for t in range(now - 30 * 3600, now + 1, 60):  # thirty hours of coarse points: the ring keeps 24
        series.coarse.append(_point(t))
    resolution, points = store.points("d1", window, now=now)
    assert resolution == (60 if window == "24h" else 5)
    assert len(points) == expected
    assert points[-1].t == now
    assert store.points("unknown", window, now=now)[1] == []


def test_recent_error_rate() -> None:
    store = MetricsStore()
    series = store.series["d1"] = Series()
    now = 1_000_000
    series.fine.append(Point(now - 600, 100, 0, 100, 0, 5.0, None, None, None, {}))  # too old
    series.fine.append(Point(now - 10, 40, 2, 4, 0, 5.0, None, None, None, {}))
    series.fine.append(Point(now - 5, 60, 0, 6, 0, 5.0, None, None, None, {}))
    assert store.recent_error_rate("d1", now=now) == (100, 0.1)
    assert store.recent_error_rate("none", now=now) == (0, None)
