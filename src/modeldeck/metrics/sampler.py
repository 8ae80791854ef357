"""Every few seconds: read each deployment's replica usage from the runtime, scrape each ready replica's
prediction counter, and cut a time-series point from the gateway's cumulative counters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

import httpx

from modeldeck.metrics.store import (
    COARSE_S,
    FINE_S,
    MetricsStore,
    ReplicaPoint,
    Series,
    point_between,
)
from modeldeck.runtimes.base import Runtime

log = logging.getLogger(__name__)

PREDICTIONS_METRIC = "modeldeck_model_predictions_total"

# deployment id -> (replica name, "host:port", unix start time or None) of its ready replicas
Target = tuple[str, str, float | None]
Targets = Callable[[], Mapping[str, Sequence[Target]]]


def parse_counter(text: str, metric: str) -> float | None:
    """Sum of every sample of ``metric`` in a Prometheus text exposition (None when absent)."""
    total: float | None = None
    for line in text.splitlines():
        if not line.startswith(metric):
            continue
        rest = line[len(metric):]
        if rest[:1] not in ("{", " "):
            continue
        if rest.startswith("{"):
            rest = rest[rest.rindex("}") + 1:]
        fields = rest.split()
        if fields:
            with contextlib.suppress(ValueError):
                total = (total or 0.0) + float(fields[0])
    return total


class Sampler:
    def __init__(
        self,
        store: MetricsStore,
        runtime: Runtime,
        targets: Targets,
        *,
        interval_s: float = FINE_S,
        scrape_timeout_s: float = 2.0,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.targets = targets
        self.interval_s = interval_s
        self.scrape_timeout_s = scrape_timeout_s
        self._last_scraped: dict[tuple[str, str], float] = {}  # (deployment, replica) -> counter
        self._http: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_tick: float | None = None
        self.since = time.time()  # replicas started before this moment may have history of their own

    async def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=self.scrape_timeout_s, trust_env=False)
        self._task = asyncio.create_task(self._run(), name="metrics-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _run(self) -> None:
        while True:
            now = time.time()
            await asyncio.sleep(self.interval_s - now % self.interval_s)  # on interval boundaries
            try:
                await self.sample_once()
            except Exception:  # one bad tick must not end sampling
                log.exception("metrics sampling failed")

    async def sample_once(self, now: float | None = None) -> None:
        targets = {dep: list(reps) for dep, reps in self.targets().items()}
        ids = set(targets)  # every deployment the gateway knows, stopped ones included
        for gone in (set(self.store.requests) | set(self.store.series)) - ids:
            self.store.forget(gone)
        usage = await asyncio.to_thread(self._usage, ids)
        scraped = await self._scrape(targets)
        now = time.time() if now is None else now
        # The gateway's counters start at zero with this process, so a deployment's first interval is
        # cut from zero.
        start = self._last_tick if self._last_tick is not None else now - self.interval_s
        for dep in ids:
            series = self.store.series.get(dep)
            if series is None:
                series = self.store.series[dep] = Series(last_fine_t=start, last_coarse_t=start)
            series.predictions += self._prediction_delta(dep, scraped.get(dep, {}))
            self._cut(series, dep, usage.get(dep, {}), now)
        self.store.replica_usage = usage
        self._last_tick = now
        live = {(dep, name) for dep, reps in targets.items() for name, _, _ in reps}
        self._last_scraped = {k: v for k, v in self._last_scraped.items() if k in live}

    def _usage(self, ids: Iterable[str]) -> dict[str, dict[str, ReplicaPoint]]:
        result: dict[str, dict[str, ReplicaPoint]] = {}
        for dep in ids:
            try:
                rows = self.runtime.usage(dep)
            except Exception as exc:  # a runtime hiccup leaves a gap, not a crash
                log.warning("usage of %s unavailable: %s", dep, exc)
                continue
            result[dep] = {
                u.name: ReplicaPoint(u.cpu, u.memory, u.gpu_utilization, u.gpu_memory) for u in rows
            }
        return result

    async def _scrape(
        self, targets: Mapping[str, Sequence[Target]]
    ) -> dict[str, dict[str, tuple[float, float | None]]]:
        """deployment -> replica -> (prediction counter, replica start time)."""
        jobs = [(dep, target) for dep, reps in targets.items() for target in reps]
        values = await asyncio.gather(*(self._scrape_one(target[1]) for _, target in jobs))
        result: dict[str, dict[str, tuple[float, float | None]]] = {}
        for (dep, (name, _, started)), value in zip(jobs, values, strict=True):
            if value is not None:
                result.setdefault(dep, {})[name] = (value, started)
        return result

    async def _scrape_one(self, address: str) -> float | None:
        assert self._http is not None, "sampler not started"
        try:
            resp = await self._http.get(f"http://{address}/metrics")
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError):
            return None
        if resp.status_code != 200:
            return None
        return parse_counter(resp.text, PREDICTIONS_METRIC)

    def _prediction_delta(self, dep: str, values: Mapping[str, tuple[float, float | None]]) -> int:
        delta = 0.0
        for name, (value, started) in values.items():
            before = self._last_scraped.get((dep, name))
            if before is None:
                # First sight. A replica started while this sampler runs has answered nothing we counted:
                # all of it is new. One that predates it (a pod that outlived a server restart, or an
                # unknown start time) is a baseline.
                delta += value if started is not None and started >= self.since else 0
            else:
                delta += value - before if value >= before else value  # went down: it restarted
            self._last_scraped[(dep, name)] = value
        return round(delta)

    def _cut(self, series: Series, dep: str, usage: dict[str, ReplicaPoint], now: float) -> None:
        counters = replace(self.store.stats(dep).snapshot(), predictions=series.predictions)
        t = round(now)
        series.fine.append(point_between(series.last_fine, counters, t=t,
                                         duration=now - series.last_fine_t, replicas=usage))
        series.last_fine, series.last_fine_t = counters, now
        for name, u in usage.items():
            sums = series.usage_sums.setdefault(name, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
            sums[0] += 1
            sums[1] += u.cpu or 0.0
            sums[2] += u.memory or 0
            if u.gpu_utilization is not None:
                sums[3] += 1
                sums[4] += u.gpu_utilization
                sums[5] += u.gpu_memory or 0
        if now // COARSE_S != series.last_coarse_t // COARSE_S:
            averaged = {
                name: ReplicaPoint(
                    s[1] / s[0], round(s[2] / s[0]),
                    s[4] / s[3] if s[3] else None, round(s[5] / s[3]) if s[3] else None,
                )
                for name, s in series.usage_sums.items()
            }
            series.coarse.append(point_between(series.last_coarse, counters, t=t,
                                               duration=now - series.last_coarse_t, replicas=averaged))
            series.last_coarse, series.last_coarse_t = counters, now
            series.usage_sums = {}
