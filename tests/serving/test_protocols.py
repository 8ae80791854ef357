"""Decoding and encoding of Seldon v1 and Open Inference Protocol v2 (no model, no process)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from modeldeck.serving.flavors.base import InputSpec
from modeldeck.serving.protocols import oip, seldon
from modeldeck.serving.protocols.common import BadRequest, reorder, to_array

NUMERIC = InputSpec(dtype=np.dtype(np.float64), n_features=4)
GENERIC = InputSpec(dtype=None, n_features=None, ndim=None, allow_nan=True)


def test_v1_ndarray_and_names() -> None:
    req = seldon.decode(b'{"data":{"names":["a","b","c","d"],"ndarray":[[1,2,3,4],[5,6,7,8]]}}', NUMERIC)
    assert req.kind == seldon.NDARRAY
    assert req.names == ["a", "b", "c", "d"]
    assert req.X.dtype == np.float64 and req.X.shape == (2, 4)


def test_v1_tensor() -> None:
    req = seldon.decode(b'{"data":{"tensor":{"shape":[2,4],"values":[1,2,3,4,5,6,7,8]}}}', NUMERIC)
    assert req.kind == seldon.TENSOR
    np.testing.assert_array_equal(req.X, np.arange(1, 9, dtype=float).reshape(2, 4))


def test_v1_raw_payloads_for_custom_models() -> None:
    assert seldon.decode(b'{"strData":"hi"}', GENERIC, accepts_raw=True).X == "hi"
    assert seldon.decode(b'{"jsonData":{"a":[1]}}', GENERIC, accepts_raw=True).X == {"a": [1]}
    b64 = base64.b64encode(b"\x00\x01").decode()
    assert seldon.decode(json.dumps({"binData": b64}).encode(), GENERIC, accepts_raw=True).X == b"\x00\x01"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty request body"),
        (b"{not json", "invalid JSON"),
        (b"[1,2]", "expected a JSON object"),
        (b"{}", "expected one of data"),
        (b'{"data":[1]}', "data must be an object"),
        (b'{"data":{}}', "data needs ndarray or tensor"),
        (b'{"data":{"ndarray":[1,2,3,4]}}', "must be 2-D"),
        (b'{"data":{"ndarray":[[1,2,3]]}}', "expected 4 features per row, got 3"),
        (b'{"data":{"ndarray":[[1,2,3,"x"]]}}', "expected numbers"),
        (b'{"data":{"ndarray":[[1,2,3,4],[1,2]]}}', "rows have different lengths"),
        (b'{"data":{"ndarray":[[1,2,3,null]]}}', "null"),
        (b'{"data":{"ndarray":[]}}', "must be 2-D"),
        (b'{"data":{"ndarray":[[1,2,3,{"a":1}]]}}', "expected numbers"),
        (b'{"data":{"tensor":{"shape":[2,4],"values":[1,2,3]}}}', "needs 8 values, got 3"),
        (b'{"data":{"tensor":{"values":[1,2,3,4]}}}', "data.tensor must be"),
        (b'{"data":{"tensor":{"shape":[-1,4],"values":[1,2,3,4]}}}', "non-negative"),
        (b'{"data":{"names":"a","ndarray":[[1,2,3,4]]}}', "data.names must be a list"),
        (b'{"strData":"hello"}', "this model takes numbers"),
        (b'{"data":{"ndarray":[[1,2,3,4]]},"meta":5}', "meta must be an object"),
        (b'{"data":{"ndarray":[[1,2,3,1e999]]}}', "invalid JSON"),
    ],
)
def test_v1_bad_payloads_name_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        seldon.decode(body, NUMERIC)
    assert message in str(info.value)
    assert info.value.status == 400


def test_v1_encode_matches_seldon() -> None:
    enc = seldon.Encoder(None)
    out = np.array([[0.25, 0.75]])
    assert json.loads(enc.encode(seldon.NDARRAY, out)) == {
        "data": {"names": ["t:0", "t:1"], "ndarray": [[0.25, 0.75]]},
        "meta": {},
    }
    assert json.loads(enc.encode(seldon.TENSOR, out)) == {
        "data": {"names": ["t:0", "t:1"], "tensor": {"shape": [1, 2], "values": [0.25, 0.75]}},
        "meta": {},
    }
    assert json.loads(enc.encode(seldon.NDARRAY, np.array([1, 0])))["data"] == {"names": [], "ndarray": [1, 0]}
    named = seldon.Encoder(["no", "yes"])
    assert json.loads(named.encode(seldon.NDARRAY, out))["data"]["names"] == ["no", "yes"]
    assert json.loads(enc.encode_raw("x")) == {"strData": "x", "meta": {}}
    assert json.loads(enc.encode_raw({"a": 1})) == {"jsonData": {"a": 1}, "meta": {}}
    assert json.loads(enc.encode_raw(b"\x01")) == {"binData": "AQ==", "meta": {}}


def test_v1_encode_non_contiguous_and_object_arrays() -> None:
    enc = seldon.Encoder(None)
    arr = np.arange(6, dtype=float).reshape(2, 3)[:, ::2]
    assert json.loads(enc.encode(seldon.NDARRAY, arr))["data"]["ndarray"] == [[0, 2], [3, 5]]
    assert json.loads(enc.encode(seldon.NDARRAY, np.array(["a", "b"], dtype=object)))["data"]["ndarray"] == ["a", "b"]


def test_v2_decode_typed_tensor() -> None:
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": list(range(8))}]}
    req = oip.decode(json.dumps(body).encode(), NUMERIC)
    assert req.id == "r1" and req.names is None and req.outputs is None
    assert req.X.dtype == np.float64 and req.X.shape == (2, 4)


def test_v2_decode_columns_as_named_inputs() -> None:
    inputs = [{"name": n, "shape": [2], "datatype": "FP64", "data": [i, i + 10]} for i, n in enumerate("abcd")]
    req = oip.decode(json.dumps({"inputs": inputs}).encode(), NUMERIC)
    assert req.names == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(req.X[:, 0], [0, 10])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "inputs must be a non-empty list"),
        ({"inputs": []}, "inputs must be a non-empty list"),
        ({"inputs": [5]}, "inputs[0] must be an object"),
        ({"inputs": [{"shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}, "name must be a string"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]}, "unknown datatype"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64"}]}, "data is missing"),
        ({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}, "needs 8 values"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}, "expected 4 features"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ["a", 2, 3, 4]}]}, "does not match"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}, "BYTES"),
        ({"inputs": [{"name": "x", "shape": "1,4", "datatype": "FP64", "data": [1, 2, 3, 4]}]}, "shape must be"),
        ({"id": 5, "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}, "id must"),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}], "outputs": [1]},
            "outputs must be a list",
        ),
        (
            {
                "inputs": [
                    {"name": n, "shape": [2 + i], "datatype": "FP64", "data": [0] * (2 + i)} for i, n in enumerate("ab")
                ]
            },
            "same length",
        ),
    ],
)
def test_v2_bad_payloads_name_the_problem(body: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest) as info:
        oip.decode(json.dumps(body).encode(), NUMERIC)
    assert message in str(info.value)


def test_v2_encode() -> None:
    enc = oip.Encoder("m", ("label", "proba"))
    outs = [np.array([1, 0]), np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)]
    got = json.loads(enc.encode(outs, "abc", enc.select(None)))
    assert got == {
        "model_name": "m",
        "id": "abc",
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]},
            {"name": "proba", "datatype": "FP32", "shape": [2, 2], "data": [0.25, 0.75, 0.5, 0.5]},
        ],
    }
    only = json.loads(enc.encode(outs, None, enc.select(["proba"])))
    assert [o["name"] for o in only["outputs"]] == ["proba"] and "id" not in only
    with pytest.raises(BadRequest, match="unknown outputs"):
        enc.select(["nope"])


def test_datatype_names() -> None:
    assert [oip.datatype(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.uint8, np.bool_, object)] == [
        "FP64",
        "FP32",
        "INT64",
        "UINT8",
        "BOOL",
        "BYTES",
    ]


def test_reorder_by_feature_names() -> None:
    spec = InputSpec(dtype=np.dtype(np.float64), n_features=3, feature_names=("a", "b", "c"))
    X = np.array([[3.0, 1.0, 2.0]])
    cache: dict[tuple[str, ...], object] = {}
    np.testing.assert_array_equal(reorder(X, ["c", "a", "b"], spec, cache), [[1.0, 2.0, 3.0]])
    assert reorder(X, ["a", "b", "c"], spec, cache) is X
    with pytest.raises(BadRequest, match="lack the model's features: c"):
        reorder(X, ["a", "b", "x"], spec, cache)


def test_missing_values_pass_for_models_that_take_them() -> None:
    spec = InputSpec(dtype=np.dtype(np.float64), n_features=2, allow_nan=True)
    assert np.isnan(to_array([[1, None]], spec, "x")[0, 1])
