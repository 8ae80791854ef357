"""Per-deployment request counters (written on the hot path) and the time series built from them.

The gateway calls ``RequestStats.record`` once per response: a dict increment and a bisect into
fixed latency buckets, no locks (one event loop). The sampler turns cumulative counters into
per-interval points: a fine ring (``FINE_S`` resolution, one hour) serves the 5 min and 1 h windows,
a coarse ring (``COARSE_S`` resolution, 24 hours) the 24 h window.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field

FINE_S = 5
COARSE_S = 60
FINE_POINTS = 3600 // FINE_S
COARSE_POINTS = 24 * 3600 // COARSE_S
WINDOWS: dict[str, tuple[str, int]] = {  # window -> (ring, seconds)
    "5m": ("fine", 300),
    "1h": ("fine", 3600),
    "24h": ("coarse", 24 * 3600),
}

# Latency bucket upper bounds in seconds: 10 steps per decade from 100 µs to 100 s. Quantiles are
# interpolated inside a bucket (<= 25% relative error); Prometheus gets a subset of these bounds.
_STEPS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5)
LATENCY_BOUNDS: tuple[float, ...] = (
    *(round(step * 10.0**exp, 6) for exp in range(-4, 2) for step in _STEPS),
    100.0,
)


class RequestStats:
    """Cumulative counters of one deployment's gateway traffic."""

    __slots__ = ("buckets", "codes", "count", "latency_sum")

    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)  # last one: above the highest bound
        self.count = 0
        self.latency_sum = 0.0

    def record(self, status: int, seconds: float) -> None:
        codes = self.codes
        codes[status] = codes.get(status, 0) + 1
        self.buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.count += 1
        self.latency_sum += seconds

    def snapshot(self) -> Counters:
        classes = [0, 0, 0, 0, 0, 0]
        for code, n in self.codes.items():
            classes[min(code // 100, 5)] += n
        return Counters(self.count, classes[4], classes[5], tuple(self.buckets))


@dataclass(frozen=True, slots=True)
class Counters:
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    buckets: tuple[int, ...] = ()
    predictions: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaPoint:
    cpu: float | None  # cores
    memory: int | None  # bytes resident
    gpu_utilization: float | None = None  # 0..1
    gpu_memory: int | None = None  # bytes


@dataclass(frozen=True, slots=True)
class Point:
    t: int  # unix seconds, end of the interval
    requests: int
    errors_4xx: int
    errors_5xx: int
    predictions: int
    duration: float
    p50: float | None  # seconds
    p95: float | None
    p99: float | None
    replicas: dict[str, ReplicaPoint]


def quantile(buckets: list[int], q: float) -> float | None:
    """Quantile of a bucket histogram, linearly interpolated inside the bucket it falls in."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            if i >= len(LATENCY_BOUNDS):
                return LATENCY_BOUNDS[-1]
            lower = LATENCY_BOUNDS[i - 1] if i else 0.0
            return lower + (LATENCY_BOUNDS[i] - lower) * (rank - seen) / n
        seen += n
    return LATENCY_BOUNDS[-1]


def point_between(
    before: Counters, after: Counters, *, t: int, duration: float, replicas: dict[str, ReplicaPoint]
) -> Point:
    delta = [a - b for a, b in zip(after.buckets, before.buckets or (0,) * len(after.buckets), strict=True)]
    if min(delta, default=0) < 0:  # counters were reset (stats recreated): count from zero
        delta = list(after.buckets)
        before = Counters(predictions=before.predictions)
    return Point(
        t=t,
        requests=max(after.requests - before.requests, 0),
        errors_4xx=max(after.errors_4xx - before.errors_4xx, 0),
        errors_5xx=max(after.errors_5xx - before.errors_5xx, 0),
        predictions=max(after.predictions - before.predictions, 0),
        duration=duration,
        p50=quantile(delta, 0.50),
        p95=quantile(delta, 0.95),
        p99=quantile(delta, 0.99),
        replicas=replicas,
    )


@dataclass
class Series:
    """One deployment's rings and the cumulative counters the last points were cut from."""

    fine: deque[Point] = field(default_factory=lambda: deque(maxlen=FINE_POINTS))
    coarse: deque[Point] = field(default_factory=lambda: deque(maxlen=COARSE_POINTS))
    last_fine: Counters = field(default_factory=Counters)
    last_coarse: Counters = field(default_factory=Counters)
    last_fine_t: float = 0.0
    last_coarse_t: float = 0.0
    predictions: int = 0  # monotonic sum of the replicas' prediction counters (resets absorbed)
    usage_sums: dict[str, list[float]] = field(default_factory=dict)  # replica -> sums over the minute


class MetricsStore:
    """Request counters and time series of every deployment the gateway knows."""

    def __init__(self) -> None:
        self.requests: dict[str, RequestStats] = {}
        self.series: dict[str, Series] = {}
        self.replica_usage: dict[str, dict[str, ReplicaPoint]] = {}  # latest sample, for /metrics

    def stats(self, deployment_id: str) -> RequestStats:
        stats = self.requests.get(deployment_id)
        if stats is None:
            stats = self.requests[deployment_id] = RequestStats()
        return stats

    def forget(self, deployment_id: str) -> None:
        self.requests.pop(deployment_id, None)
        self.series.pop(deployment_id, None)
        self.replica_usage.pop(deployment_id, None)

    def points(self, deployment_id: str, window: str, *, now: float) -> tuple[int, list[Point]]:
        """(resolution in seconds, points of the window, oldest first)."""
        ring, seconds = WINDOWS[window]
        series = self.series.get(deployment_id)
        resolution = FINE_S if ring == "fine" else COARSE_S
        if series is None:
            return resolution, []
        # list() copies in one C call: API threads read while the sampler appends on the event loop.
        source = list(series.fine if ring == "fine" else series.coarse)
        start = now - seconds
        return resolution, [p for p in source if p.t > start]

    def recent_error_rate(self, deployment_id: str, *, now: float, seconds: int = 300) -> tuple[int, float | None]:
        """(requests, 5xx share) over the last ``seconds``."""
        _, points = self.points(deployment_id, "5m" if seconds <= 300 else "1h", now=now)
        points = [p for p in points if p.t > now - seconds]
        requests = sum(p.requests for p in points)
        errors = sum(p.errors_5xx for p in points)
        return requests, (errors / requests if requests else None)
