"""Open Inference Protocol v2 REST (KServe, Triton, MLServer): typed tensors in, typed tensors out.

One input: the tensor is the model's input (rows first). Several inputs of shape [n] or [n, 1]: each
is a column named by the input's name (feature names). The answer carries every model output, or the
ones the request's `outputs` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..flavors.base import InputSpec
from .common import BadRequest, check, dumps, load_json

TO_NUMPY: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}
_KIND_NAMES = {"b": "BOOL", "u": "UINT", "i": "INT", "f": "FP"}


def datatype(dtype: np.dtype[Any]) -> str:
    prefix = _KIND_NAMES.get(dtype.kind)
    if prefix is None:
        return "BYTES"
    return prefix if prefix == "BOOL" else f"{prefix}{dtype.itemsize * 8}"


@dataclass(slots=True)
class V2Request:
    X: np.ndarray
    names: list[str] | None
    id: str | None
    outputs: list[str] | None


def decode(body: bytes, spec: InputSpec) -> V2Request:
    obj = load_json(body)
    req_id = obj.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise BadRequest("id must be a string")
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("inputs must be a non-empty list of tensors")
    tensors = [_tensor(t, i, spec) for i, t in enumerate(inputs)]
    names: list[str] | None = None
    if len(tensors) == 1:
        X = tensors[0][1]
    else:
        rows = {t.shape[0] if t.ndim else -1 for _, t in tensors}
        if len(rows) != 1 or any(t.ndim not in (1, 2) or (t.ndim == 2 and t.shape[1] != 1) for _, t in tensors):
            raise BadRequest("several inputs must each be one column (shape [n] or [n, 1]) of the same length")
        X = np.column_stack([t for _, t in tensors])
        names = [n for n, _ in tensors]
    check(X, spec, "inputs" if names else f"input {tensors[0][0]!r}")
    return V2Request(X, names, req_id, _outputs(obj.get("outputs")))


def _tensor(t: Any, i: int, spec: InputSpec) -> tuple[str, np.ndarray]:
    if not isinstance(t, dict):
        raise BadRequest(f"inputs[{i}] must be an object with name, shape, datatype and data")
    name = t.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"inputs[{i}].name must be a string")
    where = f"input {name!r}"
    shape, dt, data = t.get("shape"), t.get("datatype"), t.get("data")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadRequest(f"{where}: shape must be a list of non-negative integers")
    if dt not in TO_NUMPY:
        raise BadRequest(f"{where}: unknown datatype {dt!r}; expected one of {', '.join(TO_NUMPY)}")
    if data is None:
        raise BadRequest(f"{where}: data is missing")
    target = TO_NUMPY[dt]
    numeric_model = spec.dtype is not None and spec.dtype != object
    if target is object:
        if numeric_model:
            raise BadRequest(f"{where}: BYTES data for a model that takes numbers")
    elif spec.dtype is not None:
        target = spec.dtype
    try:
        arr = np.array(data, dtype=target)
    except (ValueError, TypeError):
        raise BadRequest(f"{where}: data does not match datatype {dt} (expected a list of numbers)") from None
    size = int(np.prod(shape)) if shape else 1
    if arr.size != size:
        raise BadRequest(f"{where}: shape {shape} needs {size} values, got {arr.size}")
    return name, arr.reshape(shape)


def _outputs(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in value):
        raise BadRequest('outputs must be a list of {"name": ...}')
    return [o["name"] for o in value]


class Encoder:
    """Answers for one model; the JSON around the numbers is built once."""

    def __init__(self, model_name: str, output_names: tuple[str, ...]) -> None:
        self.output_names = output_names
        self._head = b'{"model_name":' + orjson.dumps(model_name)
        self._out_heads = [b'{"name":' + orjson.dumps(n) + b',"datatype":"' for n in output_names]

    def select(self, wanted: list[str] | None) -> list[int]:
        if wanted is None:
            return list(range(len(self.output_names)))
        unknown = [w for w in wanted if w not in self.output_names]
        if unknown:
            raise BadRequest(f"unknown outputs {unknown}; the model has {list(self.output_names)}")
        return [self.output_names.index(w) for w in wanted]

    def encode(self, outs: list[np.ndarray], req_id: str | None, which: list[int]) -> bytes:
        parts = [self._head]
        if req_id is not None:
            parts.append(b',"id":' + orjson.dumps(req_id))
        parts.append(b',"outputs":[')
        for k, i in enumerate(which):
            out = outs[i]
            if k:
                parts.append(b",")
            parts.append(self._out_heads[i] + datatype(out.dtype).encode() + b'","shape":')
            parts.append(orjson.dumps(list(out.shape)) + b',"data":' + dumps(out.ravel()) + b"}")
        parts.append(b"]}")
        return b"".join(parts)


def error(status: int, message: str) -> bytes:
    return orjson.dumps({"error": message})


def tensor_meta(name: str, dtype: np.dtype[Any] | None, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype(dtype) if dtype is not None else "BYTES", "shape": shape}
