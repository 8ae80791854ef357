"""Shared by both protocols: request bodies to arrays, with errors that name the problem."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ..flavors.base import InputSpec

DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY


class BadRequest(Exception):
    """A client error: answered 400 (or `status`) with this message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def load_json(body: bytes) -> dict[str, Any]:
    if not body:
        raise BadRequest("empty request body; expected a JSON object")
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"invalid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=DUMPS_OPTS)


def to_array(data: Any, spec: InputSpec, where: str) -> np.ndarray:
    """Nested lists (rows first) → an array the model takes; BadRequest when it cannot be one."""
    if spec.dtype is None:
        return _generic(data, where)
    if spec.dtype == object:
        return np.array(data, dtype=object)
    try:
        X = np.array(data, dtype=spec.dtype)
    except (ValueError, TypeError) as e:
        raise BadRequest(f"{where}: {_why(data, e)}") from None
    check(X, spec, where)
    return X


def check(X: np.ndarray, spec: InputSpec, where: str) -> None:
    if spec.ndim is not None and X.ndim != spec.ndim:
        shape = list(X.shape)
        if spec.ndim == 2 and X.ndim == 1:
            raise BadRequest(f"{where} must be 2-D (a list of rows); got 1-D of length {shape[0]}")
        raise BadRequest(f"{where} must have {spec.ndim} dimensions; got shape {shape}")
    if spec.n_features is not None and X.ndim == 2 and X.shape[1] != spec.n_features:
        raise BadRequest(f"{where}: expected {spec.n_features} features per row, got {X.shape[1]}")
    if X.ndim == 0 or X.shape[0] == 0:
        raise BadRequest(f"{where} holds no rows")
    if not spec.allow_nan and X.dtype.kind == "f" and not np.isfinite(X).all():
        raise BadRequest(f"{where}: null (missing) values are not accepted by this model")


def _generic(data: Any, where: str) -> np.ndarray:
    try:
        return np.array(data)
    except ValueError:
        try:
            return np.array(data, dtype=object)
        except ValueError as e:
            raise BadRequest(f"{where}: {e}") from None


def _why(data: Any, e: Exception) -> str:
    msg = str(e)
    if "inhomogeneous" in msg or "sequence" in msg:
        return "rows have different lengths (expected a rectangular array)"
    if isinstance(e, TypeError) and "NoneType" not in msg:
        return f"expected numbers ({msg})"
    return f"expected numbers ({msg})" if "convert" in msg else f"cannot be read as numbers ({msg})"


def reorder(X: np.ndarray, names: list[str] | None, spec: InputSpec, cache: dict[tuple[str, ...], Any]) -> Any:
    """Columns in the order the model was fitted with, when the request names them differently."""
    if names is None or spec.feature_names is None or X.ndim != 2:
        return X
    key = tuple(names)
    if key == spec.feature_names:
        return X
    idx = cache.get(key)
    if idx is None:
        if len(key) != X.shape[1]:
            raise BadRequest(f"{len(key)} names for {X.shape[1]} columns")
        pos = {n: i for i, n in enumerate(key)}
        missing = [n for n in spec.feature_names if n not in pos]
        if missing:
            raise BadRequest(f"names lack the model's features: {', '.join(missing[:10])}")
        idx = np.array([pos[n] for n in spec.feature_names])
        if len(cache) < 64:
            cache[key] = idx
    return X[:, idx]
