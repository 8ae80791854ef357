"""MLflow models (a folder with an `MLmodel` file) through `mlflow.pyfunc` (needs modeldeck[mlflow]).

With a column signature, rows become a DataFrame with the signature's columns and types (or the
request's `names`); with a tensor signature, an array of its type; without one, a float array.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import InputSpec, LoadOptions, ModelLoadError, Predictor

NUMERIC = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool"}


def _to_array(out: Any) -> np.ndarray:
    if hasattr(out, "to_numpy"):  # DataFrame / Series
        return np.asarray(out.to_numpy())
    if isinstance(out, dict) and len(out) == 1:
        return np.asarray(next(iter(out.values())))
    return np.asarray(out)


class MlflowPredictor(Predictor):
    flavor = "mlflow"
    platform = "mlflow"

    def __init__(self, model: Any) -> None:
        self.model = model
        self.columns: list[str] | None = None
        self.types: dict[str, str] = {}
        schema = model.metadata.get_input_schema()
        spec = InputSpec(dtype=np.dtype(np.float64), n_features=None)
        if schema is not None and schema.is_tensor_spec():
            t = schema.inputs[0]
            shape = list(t.shape)
            n = shape[1] if len(shape) == 2 and shape[1] > 0 else None
            spec = InputSpec(dtype=np.dtype(t.type), n_features=n, ndim=len(shape) or None, allow_nan=True)
        elif schema is not None and schema.has_input_names():
            self.columns = list(schema.input_names())
            self.types = {c.name: str(getattr(c.type, "name", c.type)) for c in schema.inputs if c.name is not None}
            numeric = all(t in NUMERIC for t in self.types.values())
            spec = InputSpec(
                dtype=np.dtype(np.float64) if numeric else np.dtype(object),
                n_features=len(self.columns),
                allow_nan=True,
                feature_names=tuple(self.columns),
            )
        self.spec = spec

    def predict(self, X: np.ndarray, names: list[str] | None) -> list[np.ndarray]:
        if self.columns is None:
            return [_to_array(self.model.predict(X))]
        import pandas as pd

        frame = pd.DataFrame(X, columns=self.columns)
        as_given = X.dtype == np.float64  # doubles are already doubles; object rows need every cast
        casts = {c: NUMERIC[t] for c, t in self.types.items() if t in NUMERIC and not (as_given and t == "double")}
        if casts:
            frame = frame.astype(casts)
        return [_to_array(self.model.predict(frame))]


def load(path: Path, options: LoadOptions) -> Predictor:
    try:
        import mlflow.pyfunc
    except ImportError as e:
        raise ModelLoadError(f"MLflow models need the optional extra modeldeck[mlflow] ({e})") from e
    if not (path / "MLmodel").is_file():
        raise ModelLoadError(f"no MLmodel file in {path}")
    try:
        model = mlflow.pyfunc.load_model(str(path))
    except Exception as e:
        raise ModelLoadError(f"mlflow.pyfunc cannot load {path}: {type(e).__name__}: {e}") from e
    return MlflowPredictor(model)
