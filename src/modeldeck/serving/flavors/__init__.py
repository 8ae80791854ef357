"""Model flavors: pick one by the files found, load it, warm it up, decide how to run it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .base import InputSpec, LoadOptions, ModelLoadError, Predictor, cpu_threads, find_files

FLAVORS = ("sklearn", "xgboost", "lightgbm", "onnx", "mlflow", "python")
# Predictions slower than this run in a worker thread, so health checks and metrics answer during them;
# faster ones run inline on the event loop: on one core a thread hand-off costs more than it saves
# (measured: a 100-tree forest, ~3.5 ms per call, answers 3-5% more requests/s inline).
SLOW_PREDICT_S = 0.05

__all__ = [
    "FLAVORS",
    "InputSpec",
    "LoadOptions",
    "ModelLoadError",
    "Predictor",
    "cpu_threads",
    "detect",
    "load",
]


def model_dir(path: Path) -> Path:
    """Descend into a folder that holds nothing but one folder (archives and bucket copies often do)."""
    while path.is_dir():
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir():
            path = entries[0]
        else:
            break
    return path


def detect(path: Path) -> str:
    """The flavor for a model file or folder, by the files found (see docs/serving.md)."""
    from .boosting import lightgbm_files, xgboost_files

    if path.is_dir():
        if (path / "MLmodel").is_file():
            return "mlflow"
        if (path / "Model.py").is_file():
            return "python"
    if find_files(path, (".onnx",)):
        return "onnx"
    if xgboost_files(path):
        return "xgboost"
    if lightgbm_files(path):
        return "lightgbm"
    if find_files(path, (".joblib", ".pkl", ".pickle")):
        return "sklearn"
    listing = sorted(p.name for p in path.iterdir())[:20] if path.is_dir() else [path.name]
    raise ModelLoadError(
        f"cannot tell the model flavor from the files in {path} ({', '.join(listing) or 'empty'}); "
        "expected MLmodel, Model.py, *.onnx, an XGBoost/LightGBM model file, or *.joblib/*.pkl"
    )


def _loader(flavor: str) -> Callable[[Path, LoadOptions], Predictor]:
    if flavor == "sklearn":
        from .sklearn import load
    elif flavor == "xgboost":
        from .boosting import load_xgboost as load
    elif flavor == "lightgbm":
        from .boosting import load_lightgbm as load
    elif flavor == "onnx":
        from .onnx import load
    elif flavor == "mlflow":
        from .mlflow import load
    elif flavor == "python":
        from .python import load
    else:
        raise ModelLoadError(f"unknown flavor {flavor!r}; expected auto or one of {', '.join(FLAVORS)}")
    return load


def load(path: Path, flavor: str, options: LoadOptions, in_thread: str = "auto") -> Predictor:
    """Load, warm up and time the model. ModelLoadError (or ImportError) when it cannot be served."""
    path = model_dir(path)
    if flavor == "auto":
        flavor = detect(path)
    try:
        predictor = _loader(flavor)(path, options)
    except ImportError as e:
        raise ModelLoadError(f"the {flavor} flavor needs a package that is not installed: {e}") from e
    predictor.thread_init()
    try:
        predictor.warm_up()
        t0 = time.perf_counter()
        predictor.warm_up()
        took = time.perf_counter() - t0
    except Exception as e:
        raise ModelLoadError(f"the model failed a first prediction: {type(e).__name__}: {e}") from e
    if in_thread == "auto":
        predictor.slow = predictor.slow or took > SLOW_PREDICT_S
    else:
        predictor.slow = in_thread == "yes"
    return predictor
