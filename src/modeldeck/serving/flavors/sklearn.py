"""scikit-learn models saved with joblib or pickle (`model.joblib`, `model.pkl`, `model.pickle`).

Like PrimeHub's and Seldon's sklearn servers, answers `predict_proba` where the model has it, else
`predict`; `--method predict` selects plain `predict`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .base import InputSpec, LoadOptions, ModelLoadError, Predictor, one_file
from .fastpaths import fast_path

log = logging.getLogger("modeldeck.serving")

SUFFIXES = (".joblib", ".pkl", ".pickle")


def _allow_nan(model: Any) -> bool:
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(model).input_tags.allow_nan)
    except Exception:  # older scikit-learn or a non-scikit-learn object with the same API
        return False


class SklearnPredictor(Predictor):
    flavor = "sklearn"
    platform = "sklearn"

    def __init__(self, model: Any, method: str, fast_paths: bool = True) -> None:
        if method == "auto":
            method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
        fn = getattr(model, method, None)
        if not callable(fn):
            raise ModelLoadError(f"{type(model).__name__} has no {method}()")
        self.model = model
        self.method = method
        self._fn = fn
        self.fast_path: str | None = None
        self._try_fast_path = fast_paths
        n = getattr(model, "n_features_in_", None)
        names = getattr(model, "feature_names_in_", None)
        feature_names = tuple(str(x) for x in names) if names is not None else None
        self.spec = InputSpec(
            dtype=np.dtype(np.float64),
            n_features=int(n) if n is not None else None,
            allow_nan=_allow_nan(model),
            feature_names=feature_names,
        )
        self.output_names = (method,)
        if feature_names is not None:
            # Fitted on a DataFrame, answered with arrays in the fitted column order (names, when a request
            # sends them, reorder the columns first): the warning would cost time on every call.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")

    def thread_init(self) -> None:
        import sklearn

        # Thread-local in scikit-learn. Safe: JSON has no NaN/inf, and the protocols reject NaN (null) for
        # models that do not accept it before the model sees the batch.
        sklearn.set_config(assume_finite=True)

    def predict(self, X: np.ndarray, names: list[str] | None) -> list[np.ndarray]:
        return [np.asarray(self._fn(X))]

    def warm_up(self) -> None:
        n = self.spec.n_features
        if n is None:
            self._generic()
            return
        try:
            self.predict(np.zeros((1, n)), None)
        except Exception:
            self._generic()  # takes something else than numbers (a text or categorical pipeline)
            return
        if self._try_fast_path and self.fast_path is None:
            fast = fast_path(self.model, self.method, n, self._fn)
            if fast is not None:
                self._fn = fast
                self.fast_path = f"{type(self.model).__name__}.{self.method}"
                log.info("fast path for %s: identical answers, no per-call validation", self.fast_path)

    def _generic(self) -> None:
        # Not numbers: rows as given (numbers stay numbers, strings strings), for the pipeline to encode.
        self.spec = InputSpec(dtype=np.dtype(object), n_features=self.spec.n_features, ndim=None, allow_nan=True)
        if getattr(self.model, "feature_names_in_", None) is not None:
            self.predict = self._predict_frame  # type: ignore[method-assign]

    def _predict_frame(self, X: np.ndarray, names: list[str] | None) -> list[np.ndarray]:
        import pandas as pd

        cols = names or [str(c) for c in self.model.feature_names_in_]
        return [np.asarray(self._fn(pd.DataFrame(X, columns=cols)))]


def load(path: Path, options: LoadOptions) -> Predictor:
    import joblib

    f = one_file(path, SUFFIXES, ("model.joblib", "model.pkl", "model.pickle"), "scikit-learn model")
    try:
        model = joblib.load(f)
    except Exception as e:
        raise ModelLoadError(f"cannot unpickle {f.name}: {type(e).__name__}: {e}") from e
    if options.method not in ("auto", "predict", "predict_proba", "decision_function"):
        raise ModelLoadError(f"unknown method {options.method!r}")
    return SklearnPredictor(model, options.method, options.fast_paths)
