"""ONNX models (`model.onnx`) through onnxruntime on CPU.

The first graph input is the request's tensor. Open Inference Protocol answers carry every output;
Seldon v1 answers carry one: the first output whose name contains "prob", else the first output.
skl2onnx's ZipMap output (a list of {class: probability}) is turned into a [rows, classes] array.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import InputSpec, LoadOptions, ModelLoadError, Predictor, one_file

ORT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, list) and value and isinstance(value[0], dict):  # ZipMap: one dict per row
        return np.array([list(row.values()) for row in value], dtype=np.float32)  # map(*, float)
    return np.asarray(value)


class OnnxPredictor(Predictor):
    flavor = "onnx"
    platform = "onnxruntime"

    def __init__(self, session: Any) -> None:
        self.session = session
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ModelLoadError(f"ONNX models with one input are supported; this one has {len(inputs)}: {names}")
        inp = inputs[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        dtype = ORT_TYPES.get(inp.type)
        n = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        self.spec = InputSpec(
            dtype=np.dtype(dtype) if dtype is not None else None,
            n_features=n,
            ndim=len(shape) if shape else None,
            allow_nan=dtype in (np.float32, np.float64, np.float16),
        )
        self.batchable = not shape or not isinstance(shape[0], int)
        self.output_names = tuple(o.name for o in session.get_outputs())
        probs = [i for i, name in enumerate(self.output_names) if "prob" in name.lower()]
        self.primary_output = probs[0] if probs else 0

    def predict(self, X: np.ndarray, names: list[str] | None) -> list[np.ndarray]:
        return [_as_array(v) for v in self.session.run(None, {self.input_name: X})]


def load(path: Path, options: LoadOptions) -> Predictor:
    import onnxruntime as ort

    f = one_file(path, (".onnx",), ("model.onnx",), "ONNX model")
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.threads
    so.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(f), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelLoadError(f"cannot load ONNX model {f.name}: {e}") from e
    return OnnxPredictor(session)
