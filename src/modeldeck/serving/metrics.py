"""Prometheus metrics, hand-rolled: one float64 array per worker process.

With `--workers N` the arrays live in one shared anonymous mapping (one row per worker, each worker
writes only its own row), so whichever worker answers `/metrics` reports the sum over all of them.
"""

from __future__ import annotations

import bisect
import mmap
from typing import Any

import numpy as np

PROTOCOLS = ("v1", "v2")
CODES = (200, 400, 404, 405, 413, 500, 503)
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

_N_REQ = len(PROTOCOLS) * (len(CODES) + 1)  # +1: any other code
_PRED = _N_REQ
_DUR = _PRED + 1  # buckets (+Inf), sum, count
_BATCH = _DUR + len(DURATION_BUCKETS) + 3
_READY = _BATCH + len(BATCH_BUCKETS) + 3  # 1.0 once this worker's model is loaded
SLOTS = _READY + 1


def shared_block(workers: int) -> mmap.mmap:
    """Zeroed memory shared with forked worker processes (MAP_SHARED | MAP_ANONYMOUS)."""
    return mmap.mmap(-1, max(1, workers) * SLOTS * 8)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self, name: str, flavor: str = "", block: Any = None, workers: int = 1, index: int = 0) -> None:
        self.name = name
        self.flavor = flavor
        self.load_seconds = 0.0
        if block is None:
            self._all = np.zeros((1, SLOTS))
        else:
            self._all = np.frombuffer(block, dtype=np.float64).reshape(workers, SLOTS)
        self._v = self._all[index]
        self._codes = {c: i for i, c in enumerate(CODES)}
        self._dur_bounds = list(DURATION_BUCKETS)
        self._batch_bounds = list(BATCH_BUCKETS)

    @property
    def ready(self) -> bool:
        """This worker's model is loaded."""
        return bool(self._v[_READY])

    @ready.setter
    def ready(self, value: bool) -> None:
        self._v[_READY] = 1.0 if value else 0.0

    def all_ready(self) -> bool:
        """Every worker of this server has its model loaded (what readiness means with --workers N)."""
        return bool((self._all[:, _READY] == 1.0).all())

    def request(self, protocol: int, code: int, seconds: float, rows: int) -> None:
        """protocol: 0 = v1, 1 = v2; rows: predictions answered (0 for a failed request)."""
        v = self._v
        v[protocol * (len(CODES) + 1) + self._codes.get(code, len(CODES))] += 1
        if rows:
            v[_PRED] += rows
        v[_DUR + bisect.bisect_left(self._dur_bounds, seconds)] += 1
        v[_DUR + len(DURATION_BUCKETS) + 1] += seconds

    def batch(self, rows: int) -> None:
        v = self._v
        v[_BATCH + bisect.bisect_left(self._batch_bounds, rows)] += 1
        v[_BATCH + len(BATCH_BUCKETS) + 1] += rows

    def snapshot(self) -> np.ndarray:
        """Counters summed over the workers."""
        return np.asarray(self._all.sum(axis=0))

    def render(self) -> bytes:
        v = self.snapshot()
        p = "modeldeck_model_"
        lines = [
            f"# HELP {p}requests_total Prediction requests, by protocol (v1 Seldon, v2 Open Inference) and code.",
            f"# TYPE {p}requests_total counter",
        ]
        for pi, proto in enumerate(PROTOCOLS):
            base = pi * (len(CODES) + 1)
            for ci, code in enumerate((*CODES, "other")):
                n = v[base + ci]
                if n or code == 200:
                    lines.append(f'{p}requests_total{{protocol="{proto}",code="{code}"}} {n:.0f}')
        lines += [
            f"# HELP {p}predictions_total Rows (instances) predicted.",
            f"# TYPE {p}predictions_total counter",
            f"{p}predictions_total {v[_PRED]:.0f}",
        ]
        lines += _histogram(
            f"{p}request_duration_seconds", "Prediction request latency in the server.", DURATION_BUCKETS, v, _DUR
        )
        lines += _histogram(f"{p}batch_size", "Rows per model call (adaptive batching).", BATCH_BUCKETS, v, _BATCH)
        name, flavor = _escape(self.name), _escape(self.flavor)
        lines += [
            f"# HELP {p}ready 1 when the model is loaded and answering (in every worker).",
            f"# TYPE {p}ready gauge",
            f"{p}ready {1 if self.all_ready() else 0}",
            f"# HELP {p}load_seconds Seconds spent fetching and loading the model.",
            f"# TYPE {p}load_seconds gauge",
            f"{p}load_seconds {self.load_seconds:.3f}",
            f"# HELP {p}info The served model.",
            f"# TYPE {p}info gauge",
            f'{p}info{{name="{name}",flavor="{flavor}"}} 1',
        ]
        return ("\n".join(lines) + "\n").encode()


def _histogram(name: str, help_: str, bounds: tuple[float, ...], v: np.ndarray, at: int) -> list[str]:
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
    total = 0.0
    for i, b in enumerate((*bounds, float("inf"))):
        total += v[at + i]
        le = "+Inf" if b == float("inf") else f"{b:g}"
        lines.append(f'{name}_bucket{{le="{le}"}} {total:.0f}')
    lines.append(f"{name}_sum {v[at + len(bounds) + 1]:.6g}")
    lines.append(f"{name}_count {total:.0f}")
    return lines
