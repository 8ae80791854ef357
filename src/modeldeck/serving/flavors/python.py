"""A custom `Model` class in `Model.py` (the Seldon Python wrapper convention PrimeHub users wrote):

    class Model:
        def __init__(self, model_uri=None): ...      # model_uri (optional): the local model folder
        def load(self): ...                           # optional
        def predict(self, X, feature_names, meta=None): ...   # meta optional
        class_names = ["a", "b"]                      # optional: names of the answer's columns

One call per request (never batched), in a worker thread, like the Seldon wrapper. `strData`,
`jsonData` and `binData` reach `predict` as a str, a JSON value and bytes.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np

from .base import InputSpec, LoadOptions, ModelLoadError, Predictor


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _n_positional(fn: Any) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


class PythonPredictor(Predictor):
    flavor = "python"
    platform = "python"
    batchable = False
    slow = True
    accepts_raw = True

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self._predict = obj.predict
        self._with_meta = _n_positional(obj.predict) >= 3
        self.spec = InputSpec(dtype=None, n_features=None, ndim=None, allow_nan=True)
        names = getattr(obj, "class_names", None)
        self.class_names = [str(n) for n in names] if names is not None else None

    def predict_raw(self, payload: Any, names: list[str] | None, meta: dict[str, Any] | None) -> Any:
        if self._with_meta:
            return self._predict(payload, names, meta or {})
        return self._predict(payload, names)

    def predict(self, X: np.ndarray, names: list[str] | None) -> list[np.ndarray]:
        return [np.asarray(self.predict_raw(X, names, None))]

    def warm_up(self) -> None:  # user code: no guessing what a valid input is
        return


def load(path: Path, options: LoadOptions) -> Predictor:
    folder = path if path.is_dir() else path.parent
    if not (folder / "Model.py").is_file():
        raise ModelLoadError(f"no Model.py in {folder}")
    sys.path.insert(0, str(folder))
    sys.modules.pop("Model", None)
    try:
        module = importlib.import_module("Model")
    except Exception as e:
        raise ModelLoadError(f"importing Model.py failed: {type(e).__name__}: {e}") from e
    cls: Any = getattr(module, "Model", None)
    if cls is None or not inspect.isclass(cls):
        raise ModelLoadError("Model.py defines no class Model")
    cls = cast(Any, cls)
    if not callable(getattr(cls, "predict", None)):
        raise ModelLoadError("class Model has no predict(X, feature_names) method")
    try:
        obj: Any = cls(model_uri=str(folder)) if _accepts(cls, "model_uri") else cls()
        if callable(getattr(obj, "load", None)):
            obj.load()
    except Exception as e:
        raise ModelLoadError(f"Model() or Model.load() failed: {type(e).__name__}: {e}") from e
    return PythonPredictor(obj)
