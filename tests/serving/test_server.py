"""The model server as a real process over real HTTP: every flavor, both protocols, errors, shutdown."""

from __future__ import annotations

import base64
import functools
import http.server
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_helpers import (
    CUSTOM_MODEL,
    MLFLOW_ENV,
    Built,
    ServerProcess,
    mlflow_tracking_uri,
    post,
    request,
)

pytestmark = pytest.mark.slow

FLAVORS = ["sklearn", "xgboost", "lightgbm", "onnx", "mlflow", "python"]
V1 = "/api/v1.0/predictions"


@pytest.fixture(scope="module")
def http_models(model_root: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(model_root))
    handler.log_message = lambda *a, **k: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def servers(
    built: dict[str, Built], model_root: Path, http_models: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServerProcess]]:
    """One server per flavor, started together; each reaches its model a different way."""
    logs = tmp_path_factory.mktemp("servers")
    roots = {"MODELDECK_MODEL_ROOTS": str(model_root)}
    uris: dict[str, tuple[list[str], dict[str, str]]] = {
        "sklearn": ([f"--model-uri={http_models}/sklearn/model.joblib", f"--cache-dir={logs / 'cache'}"], {}),
        "xgboost": ([f"--model-uri=file://{built['xgboost'].path}"], roots),
        "lightgbm": ([f"--model-uri=file://{built['lightgbm'].path}", "--flavor=lightgbm"], roots),
        "onnx": ([f"--model-uri={built['onnx'].path}", f"--model-roots={model_root}"], {}),
        "mlflow": (
            ["--model-uri=models:/iris-rf/1", f"--cache-dir={logs / 'cache'}"],
            {**MLFLOW_ENV, "MLFLOW_TRACKING_URI": mlflow_tracking_uri(model_root)},
        ),
        "python": ([f"--model-uri={built['python'].path}", "--flavor=python", "--max-body-mb=0.01"], {}),
    }
    procs = {
        flavor: ServerProcess([*args, f"--name={flavor}-model"], logs / flavor, env).start()
        for flavor, (args, env) in uris.items()
    }
    try:
        for p in procs.values():
            p.wait_ready()
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def _v2_body(X: np.ndarray, datatype: str = "FP64", rid: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": datatype, "data": X.ravel().tolist()}]
    }
    if rid is not None:
        body["id"] = rid
    return body


def _same(got: Any, want: np.ndarray, rtol: float = 0.0) -> None:
    if rtol:
        np.testing.assert_allclose(np.asarray(got, dtype=want.dtype), want, rtol=rtol, atol=0)
    else:
        np.testing.assert_array_equal(np.asarray(got, dtype=want.dtype), want)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_v1_and_v2_answers_equal_in_process_predictions(
    servers: dict[str, ServerProcess], built: dict[str, Built], flavor: str
) -> None:
    port, b = servers[flavor].port, built[flavor]
    primary = b.expected[b.primary]

    status, got = post(port, V1, {"data": {"ndarray": b.X.tolist()}})
    assert status == 200, got
    _same(got["data"]["ndarray"], primary)
    assert got["meta"] == {}
    if primary.ndim == 2:
        names = ["setosa", "versicolor", "virginica"] if flavor == "python" else [f"t:{i}" for i in range(3)]
        assert got["data"]["names"] == names

    tensor = {"shape": list(b.X.shape), "values": b.X.ravel().tolist()}
    status, got = post(port, V1, {"data": {"tensor": tensor}})
    assert status == 200, got
    assert got["data"]["tensor"]["shape"] == list(primary.shape)
    _same(np.reshape(got["data"]["tensor"]["values"], primary.shape), primary)

    dt = "FP32" if b.X.dtype == np.float32 else "FP64"
    status, got = post(port, f"/v2/models/{flavor}-model/infer", _v2_body(b.X, dt, rid="req-1"))
    assert status == 200, got
    assert got["model_name"] == f"{flavor}-model" and got["id"] == "req-1"
    assert len(got["outputs"]) == len(b.expected)
    for out, want in zip(got["outputs"], b.expected, strict=True):
        assert out["shape"] == list(want.shape)
        _same(np.reshape(out["data"], want.shape), want)


def test_health_and_metadata(servers: dict[str, ServerProcess]) -> None:
    port = servers["onnx"].port
    assert request(port, "GET", "/v2/health/live") == (200, {"live": True})
    assert request(port, "GET", "/v2/health/ready")[0] == 200
    assert request(port, "GET", "/v2/models/onnx-model/ready") == (200, {"name": "onnx-model", "ready": True})
    status, meta = request(port, "GET", "/v2/models/onnx-model")
    assert status == 200
    assert meta["platform"] == "onnxruntime"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["output_label", "output_probability"]
    assert request(port, "GET", "/v2/models/onnx-model/versions/1")[0] == 200
    status, err = request(port, "GET", "/v2/models/other/ready")
    assert status == 404 and "other" in err["error"]
    assert request(port, "GET", "/nope")[0] == 404
    assert request(port, "GET", V1)[0] == 405
    assert request(port, "GET", "/v2")[1]["name"] == "modeldeck"


def test_v2_output_selection(servers: dict[str, ServerProcess], built: dict[str, Built]) -> None:
    b = built["onnx"]
    body = {**_v2_body(b.X, "FP32"), "outputs": [{"name": "output_probability"}]}
    status, got = post(servers["onnx"].port, "/v2/models/onnx-model/infer", body)
    assert status == 200
    assert [o["name"] for o in got["outputs"]] == ["output_probability"]


def test_feature_names_reorder_columns(servers: dict[str, ServerProcess], built: dict[str, Built]) -> None:
    from serving_helpers import IRIS_COLUMNS

    b = built["mlflow"]
    order = [3, 1, 0, 2]
    names = [IRIS_COLUMNS[i] for i in order]
    status, got = post(servers["mlflow"].port, V1, {"data": {"names": names, "ndarray": b.X[:, order].tolist()}})
    assert status == 200, got
    _same(got["data"]["ndarray"], b.expected[0])
    columns = [
        {"name": n, "shape": [len(b.X)], "datatype": "FP64", "data": b.X[:, i].tolist()}
        for n, i in zip(names, order, strict=True)
    ]
    status, got = post(servers["mlflow"].port, "/v2/models/mlflow-model/infer", {"inputs": columns})
    assert status == 200, got
    _same(got["outputs"][0]["data"], b.expected[0])


def test_custom_model_raw_payloads(servers: dict[str, ServerProcess]) -> None:
    port = servers["python"].port
    assert post(port, V1, {"strData": "hello"}) == (200, {"strData": "HELLO", "meta": {}})
    status, got = post(port, V1, {"jsonData": {"a": [1, 2]}})
    assert status == 200 and got["jsonData"] == {"echo": {"a": [1, 2]}, "names": None}
    status, got = post(port, V1, {"binData": base64.b64encode(b"abc").decode()})
    assert status == 200 and base64.b64decode(got["binData"]) == b"cba"


def test_concurrent_requests_each_get_their_own_answer(
    servers: dict[str, ServerProcess], built: dict[str, Built]
) -> None:
    import joblib

    port = servers["sklearn"].port
    model = joblib.load(built["sklearn"].path / "model.joblib")
    rng = np.random.default_rng(0)
    rows = rng.uniform(0, 8, size=(200, 4))

    def one(i: int) -> tuple[int, Any]:
        X = rows[i : i + 1 + i % 3]
        if i % 2:
            return i, post(port, V1, {"data": {"ndarray": X.tolist()}})[1]["data"]["ndarray"]
        return i, post(port, "/v2/models/sklearn-model/infer", _v2_body(X))[1]["outputs"][0]["data"]

    with ThreadPoolExecutor(16) as pool:
        for i, got in pool.map(one, range(200)):
            want = model.predict_proba(rows[i : i + 1 + i % 3])
            # batched with other requests: equal up to floating-point rounding (BLAS kernels differ by batch size)
            _same(np.reshape(got, want.shape), want, rtol=1e-12)


BAD_BODIES = [
    (V1, b"", "empty request body"),
    (V1, b"{oops", "invalid JSON"),
    (V1, b"[]", "expected a JSON object"),
    (V1, b'{"data":{"ndarray":[[1,2,3]]}}', "expected 4 features"),
    (V1, b'{"data":{"ndarray":[1,2,3,4]}}', "must be 2-D"),
    (V1, b'{"data":{"ndarray":[["a","b","c","d"]]}}', "expected numbers"),
    (V1, b'{"data":{"ndarray":[[1,2,3,4],[1]]}}', "different lengths"),
    (V1, b'{"data":{"ndarray":[[1,2,3,null]]}}', "null"),
    (V1, b'{"data":{"tensor":{"shape":[1,4],"values":[1]}}}', "needs 4 values"),
    (V1, b'{"strData":"x"}', "takes numbers"),
    ("/v2/models/sklearn-model/infer", b'{"inputs":[]}', "non-empty"),
    (
        "/v2/models/sklearn-model/infer",
        b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1]}]}',
        "needs 4",
    ),
    (
        "/v2/models/sklearn-model/infer",
        b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"STR","data":[1]}]}',
        "datatype",
    ),
    (
        "/v2/models/sklearn-model/infer",
        b'{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}',
        "4 features",
    ),
]


def test_bad_payloads_get_400_with_a_message(servers: dict[str, ServerProcess]) -> None:
    port = servers["sklearn"].port
    for path, body, message in BAD_BODIES:
        status, got = request(port, "POST", path, body)
        assert status == 400, (body, got)
        text = got["status"]["info"] if path == V1 else got["error"]
        assert message in text, (body, text)
    assert post(port, V1, {"data": {"ndarray": [[1, 2, 3, 4]]}})[0] == 200  # still serving


def test_too_large_body_gets_413(servers: dict[str, ServerProcess]) -> None:
    status, got = post(servers["python"].port, V1, {"data": {"ndarray": [[1.0, 2.0, 3.0, 4.0]] * 2000}})
    assert status == 413 and "larger than" in got["status"]["info"]


def test_metrics(servers: dict[str, ServerProcess]) -> None:
    port = servers["lightgbm"].port
    for _ in range(3):
        post(port, V1, {"data": {"ndarray": [[1, 2, 3, 4], [4, 3, 2, 1]]}})
    request(port, "POST", V1, b"{bad")
    status, text = request(port, "GET", "/metrics")
    assert status == 200

    def value(series: str) -> float:
        m = re.search(r"^" + re.escape(series) + r" ([0-9.e+]+)$", text, re.M)
        assert m, series
        return float(m.group(1))

    assert value('modeldeck_model_requests_total{protocol="v1",code="200"}') >= 3
    assert value('modeldeck_model_requests_total{protocol="v1",code="400"}') >= 1
    assert value("modeldeck_model_predictions_total") >= 6
    assert value('modeldeck_model_request_duration_seconds_bucket{le="+Inf"}') >= 4
    assert value("modeldeck_model_batch_size_count") >= 3
    assert value("modeldeck_model_ready") == 1
    assert 'modeldeck_model_info{name="lightgbm-model",flavor="lightgbm"} 1' in text


@pytest.mark.parametrize(
    ("uri", "roots", "message"),
    [
        ("file:///nonexistent/model", "", "does not exist"),
        ("MODEL_ROOT/sklearn", "/somewhere/else", "outside the allowed model roots"),
        ("MODEL_ROOT/broken", "", "cannot unpickle"),
        ("http://127.0.0.1:1/model.joblib", "", "cannot download"),
    ],
)
def test_load_failure_exits_2_with_a_clear_message(
    server_factory: Any, built: dict[str, Built], model_root: Path, uri: str, roots: str, message: str
) -> None:
    (model_root / "broken").mkdir(exist_ok=True)
    (model_root / "broken" / "model.joblib").write_bytes(b"garbage")
    t0 = time.monotonic()
    server = server_factory(
        f"--model-uri={uri.replace('MODEL_ROOT', str(model_root))}",
        "--name=x",
        f"--cache-dir={model_root / 'cache'}",
        env={"MODELDECK_MODEL_ROOTS": roots},
    )
    assert server.proc.wait(20) == 2
    assert time.monotonic() - t0 < 20
    failed = [line for line in server.stderr.splitlines() if line.startswith("ModelLoadFailed:")]
    assert len(failed) == 1 and message in failed[0], server.stderr


def test_live_before_ready_and_sigterm_finishes_in_flight_requests(
    server_factory: Any, built: dict[str, Built], tmp_path: Path
) -> None:
    model = tmp_path / "slow"
    model.mkdir()
    shutil.copy(built["python"].path / "clf.joblib", model / "clf.joblib")
    (model / "Model.py").write_text(
        CUSTOM_MODEL.replace("def load(self):\n", "def load(self):\n        time.sleep(1.5)\n")
    )
    server = server_factory(f"--model-uri={model}", "--name=slow")
    deadline = time.monotonic() + 20
    while True:
        try:
            assert request(server.port, "GET", "/v2/health/live")[0] == 200
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert request(server.port, "GET", "/v2/health/ready")[0] == 503
    assert post(server.port, V1, {"strData": "x"})[0] == 503
    server.wait_ready()
    with ThreadPoolExecutor(2) as pool:
        # the model sleeps -X[0, 0] seconds; requests run one at a time, as in the Seldon wrapper
        futures = [
            pool.submit(
                post, server.port, V1, {"jsonData": {"i": i}} if i else {"data": {"ndarray": [[-0.8, 1, 1, 1]]}}
            )
            for i in range(2)
        ]
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        results = [f.result(timeout=20) for f in futures]
    assert [status for status, _ in results] == [200, 200]
    assert server.proc.wait(20) == 0


def test_workers_share_the_port_and_the_metrics(server_factory: Any, built: dict[str, Built]) -> None:
    b = built["sklearn"]
    server = server_factory(f"--model-uri={b.path}", "--name=w", "--workers=2").wait_ready()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(server.port, V1, {"data": {"ndarray": b.X.tolist()}}), range(40)))
    for status, got in answers:
        assert status == 200
        _same(got["data"]["ndarray"], b.expected[0])
    for _ in range(20):
        status, text = request(server.port, "GET", "/metrics")
        m = re.search(r"^modeldeck_model_predictions_total (\d+)$", text, re.M)
        assert m and int(m.group(1)) == 40 * len(b.X)  # the sum over both workers, whichever answers
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0


def test_cli_help_and_bad_flags(server_factory: Any) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "modeldeck.serving", "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and "--model-uri" in out.stdout and "--max-batch-wait-ms" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "modeldeck.serving", "--model-uri=x", "--name=x", "--port=1", "--workers=0"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert bad.returncode != 0 and "--workers" in bad.stderr
