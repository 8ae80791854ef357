"""Seldon Core v1 REST (`POST /api/v1.0/predictions`), the protocol PrimeHub's endpoints spoke.

Requests: `{"data": {"names": [...], "ndarray": [[...]]}}`, `{"data": {"tensor": {"shape": [...],
"values": [...]}}}`, `{"strData": "..."}`, `{"jsonData": ...}`, `{"binData": "<base64>"}`, optional
`"meta"`. Answers mirror the request's form: `{"data": {"names": [...], "ndarray"|"tensor": ...},
"meta": {}}`, where names are the model's `class_names` or `t:0, t:1, ...` (2-D answers), as Seldon's.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..flavors.base import InputSpec
from .common import BadRequest, check, dumps, load_json, to_array

NDARRAY, TENSOR, STR, JSON, BIN = "ndarray", "tensor", "strData", "jsonData", "binData"
_RAW_KINDS = (STR, JSON, BIN)


@dataclass(slots=True)
class V1Request:
    kind: str
    X: Any  # np.ndarray for ndarray/tensor, else str / JSON value / bytes
    names: list[str] | None
    meta: dict[str, Any] | None


def decode(body: bytes, spec: InputSpec, accepts_raw: bool = False) -> V1Request:
    obj = load_json(body)
    meta = obj.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise BadRequest("meta must be an object")
    data = obj.get("data")
    if data is None:
        for kind in _RAW_KINDS:
            if kind in obj:
                if not accepts_raw:
                    raise BadRequest(f"this model takes numbers: send data.ndarray or data.tensor, not {kind}")
                return V1Request(kind, _raw(kind, obj[kind]), None, meta)
        raise BadRequest("expected one of data (ndarray or tensor), strData, jsonData, binData")
    if not isinstance(data, dict):
        raise BadRequest("data must be an object holding ndarray or tensor")
    names = data.get("names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise BadRequest("data.names must be a list of strings")
    if "ndarray" in data:
        return V1Request(NDARRAY, to_array(data["ndarray"], spec, "data.ndarray"), names or None, meta)
    if "tensor" in data:
        return V1Request(TENSOR, _tensor(data["tensor"], spec), names or None, meta)
    if "tftensor" in data:
        raise BadRequest("data.tftensor is not supported; send data.ndarray or data.tensor")
    raise BadRequest("data needs ndarray or tensor")


def _raw(kind: str, value: Any) -> Any:
    if kind == STR and not isinstance(value, str):
        raise BadRequest("strData must be a string")
    if kind == BIN:
        if not isinstance(value, str):
            raise BadRequest("binData must be a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("binData is not valid base64") from None
    return value


def _tensor(t: Any, spec: InputSpec) -> np.ndarray:
    if not isinstance(t, dict) or "shape" not in t or "values" not in t:
        raise BadRequest('data.tensor must be {"shape": [...], "values": [...]}')
    shape, values = t["shape"], t["values"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadRequest("data.tensor.shape must be a list of non-negative integers")
    if not isinstance(values, list):
        raise BadRequest("data.tensor.values must be a flat list of numbers")
    size = int(np.prod(shape)) if shape else 1
    if len(values) != size:
        raise BadRequest(f"data.tensor.shape {shape} needs {size} values, got {len(values)}")
    flat_spec = InputSpec(dtype=spec.dtype, n_features=None, ndim=1, allow_nan=True)
    X = to_array(values, flat_spec, "data.tensor.values").reshape(shape)
    check(X, spec, "data.tensor")
    return X


class Encoder:
    """Answers for one model; the JSON around the numbers is built once per (form, columns)."""

    def __init__(self, class_names: list[str] | None) -> None:
        self.class_names = class_names
        self._prefix: dict[tuple[str, int], bytes] = {}

    def _head(self, kind: str, out: np.ndarray) -> bytes:
        cols = out.shape[1] if out.ndim > 1 else 0
        key = (kind, cols)
        head = self._prefix.get(key)
        if head is None:
            names = self.class_names if self.class_names is not None else [f"t:{i}" for i in range(cols)]
            head = b'{"data":{"names":' + orjson.dumps(names) + b',"' + kind.encode() + b'":'
            self._prefix[key] = head
        return head

    def encode(self, kind: str, out: np.ndarray) -> bytes:
        if kind == TENSOR:
            return (
                self._head(kind, out)
                + b'{"shape":'
                + orjson.dumps(list(out.shape))
                + b',"values":'
                + dumps(out.ravel())
                + b'}},"meta":{}}'
            )
        return self._head(NDARRAY, out) + dumps(out) + b'},"meta":{}}'

    def encode_raw(self, result: Any) -> bytes:
        if isinstance(result, str):
            return dumps({STR: result, "meta": {}})
        if isinstance(result, bytes | bytearray):
            return dumps({BIN: base64.b64encode(result).decode(), "meta": {}})
        if isinstance(result, np.ndarray | np.generic):
            return self.encode(NDARRAY, np.asarray(result))
        return dumps({JSON: result, "meta": {}})


def error(status: int, message: str) -> bytes:
    reason = "BAD_DATA" if status < 500 else "MICROSERVICE_INTERNAL_ERROR"
    return orjson.dumps({"status": {"code": status, "info": message, "reason": reason, "status": "FAILURE"}})
