"""What every flavor loader returns: one object with one internal predict call."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class ModelLoadError(Exception):
    """The model cannot be fetched or loaded; the CLI reports it as `ModelLoadFailed: ...` and exits 2."""


@dataclass(frozen=True)
class InputSpec:
    """What a request's numbers are turned into before they reach the model (decided at load time).

    dtype None means "generic": numpy infers the type (strings allowed), for models that take non-numeric
    input (custom Python models, text pipelines). n_features None means "not known, not checked".
    """

    dtype: np.dtype[Any] | None = None
    n_features: int | None = None
    ndim: int | None = 2
    allow_nan: bool = False
    feature_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class LoadOptions:
    method: str = "auto"  # auto | predict | predict_proba (scikit-learn style models)
    threads: int = 1  # intra-op threads a native runtime may use (onnxruntime, xgboost, lightgbm)
    fast_paths: bool = True  # verified fast paths for common scikit-learn models (flavors/fastpaths.py)


def cpu_threads(workers: int) -> int:
    """CPUs this process may use (taskset/cpuset affinity, capped by a cgroup v2 CPU quota such as a
    Kubernetes CPU limit), shared between the workers."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus // max(1, workers))


class Predictor:
    """A loaded model. `predict` gets a batch (rows first) and returns one array per output, rows first.

    Subclasses fill the attributes in `__init__`: everything per request that can be decided at load time is.
    """

    flavor: str = ""
    platform: str = ""
    spec: InputSpec = InputSpec()
    output_names: tuple[str, ...] = ("output-0",)
    primary_output: int = 0  # the output the Seldon v1 protocol answers with
    class_names: list[str] | None = None  # Seldon v1 `data.names` of the answer; None: t:0, t:1, ...
    batchable: bool = True  # False: one call per request (custom code), never concatenated
    slow: bool = False  # True: predictions run in a worker thread so the event loop keeps answering
    accepts_raw: bool = False  # strData / jsonData / binData go to predict_raw

    def predict(self, X: np.ndarray, names: list[str] | None) -> list[np.ndarray]:
        raise NotImplementedError

    def predict_raw(self, payload: Any, names: list[str] | None, meta: dict[str, Any] | None) -> Any:
        raise NotImplementedError

    def thread_init(self) -> None:
        """Called once in every thread that will call predict (per-thread library settings)."""

    def warm_up(self) -> None:
        """A first prediction at load time, so the first request does not pay for lazy initialisation."""
        if self.spec.n_features is None or self.spec.dtype is None or self.spec.ndim != 2:
            return
        self.predict(np.zeros((1, self.spec.n_features), dtype=self.spec.dtype), None)


def find_files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files directly in `path` (or `path` itself) whose name ends with one of `suffixes`, sorted."""
    if path.is_file():
        return [path] if path.name.lower().endswith(suffixes) else []
    return sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))


def one_file(path: Path, suffixes: tuple[str, ...], preferred: tuple[str, ...], what: str) -> Path:
    files = find_files(path, suffixes)
    for name in preferred:
        for f in files:
            if f.name == name:
                return f
    if len(files) == 1:
        return files[0]
    if not files:
        raise ModelLoadError(f"no {what} file ({', '.join(suffixes)}) found in {path}")
    raise ModelLoadError(
        f"several {what} files in {path} ({', '.join(f.name for f in files)}); name one {preferred[0]}"
    )
