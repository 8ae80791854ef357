"""The ASGI app in this process, with a stand-in model: routing, readiness, error mapping, metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from modeldeck.serving.app import ServingApp
from modeldeck.serving.flavors import InputSpec, ModelLoadError, Predictor
from modeldeck.serving.metrics import Metrics


class SeldonError(Exception):
    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class Doubler(Predictor):
    flavor = "test"
    platform = "test"
    spec = InputSpec(dtype=np.dtype(np.float64), n_features=2)
    output_names = ("double",)

    def predict(self, X: np.ndarray, names: list[str] | None) -> list[np.ndarray]:
        if X[0, 0] == 13:
            raise ValueError("unlucky row")
        if X[0, 0] == 14:
            raise SeldonError("forbidden value", 422)
        if X[0, 0] == 15:
            raise RuntimeError("model crashed")
        return [X * 2]


async def call(app: ServingApp, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    await app({"type": "http", "method": method, "path": path}, receive, send)
    status = sent[0]["status"]
    raw = sent[1]["body"]
    return status, (json.loads(raw) if raw.startswith(b"{") else raw.decode())


def with_app(load: Callable[[], Predictor], test: Callable[[ServingApp], Any]) -> Any:
    async def go() -> Any:
        fatal: list[bool] = []
        app = ServingApp("m", load, Metrics("m"), on_fatal=lambda: fatal.append(True))
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await queue.put({"type": "lifespan.startup"})

        async def send(msg: dict[str, Any]) -> None:
            pass

        lifespan = asyncio.ensure_future(app({"type": "lifespan"}, queue.get, send))
        try:
            return await test(app), fatal
        finally:
            await queue.put({"type": "lifespan.shutdown"})
            await lifespan

    return asyncio.run(go())


async def until_ready(app: ServingApp) -> None:
    for _ in range(200):
        if app.ready:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not ready")


def test_routes_and_predictions() -> None:
    async def test(app: ServingApp) -> None:
        await until_ready(app)
        assert await call(app, "GET", "/v2/health/ready") == (200, {"name": "m", "ready": True})
        status, got = await call(app, "POST", "/api/v1.0/predictions", b'{"data":{"ndarray":[[1,2]]}}')
        assert (status, got["data"]["ndarray"]) == (200, [[2.0, 4.0]])
        status, got = await call(app, "POST", "/predict", b'{"data":{"ndarray":[[1,2]]}}')
        assert status == 200
        body = b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"INT64","data":[3,4]}]}'
        status, got = await call(app, "POST", "/v2/models/m/versions/7/infer", body)
        assert status == 200 and got["outputs"] == [
            {"name": "double", "datatype": "FP64", "shape": [1, 2], "data": [6, 8]}
        ]
        assert (await call(app, "GET", "/v2/models/m"))[1]["outputs"] == [
            {"name": "double", "datatype": "FP64", "shape": [-1, 2]}
        ]
        assert (await call(app, "POST", "/v2/models/x/infer", body))[0] == 404
        assert (await call(app, "GET", "/v2/models/m/infer"))[0] == 405
        assert (await call(app, "GET", "/v2/models/m/other"))[0] == 404

    with_app(Doubler, test)


@pytest.mark.parametrize(
    ("first", "status", "message"),
    [
        (13, 400, "the model rejected the input: ValueError: unlucky row"),
        (14, 422, "forbidden value"),
        (15, 500, "prediction failed: RuntimeError: model crashed"),
    ],
)
def test_model_errors_are_mapped_and_the_server_goes_on(first: int, status: int, message: str) -> None:
    async def test(app: ServingApp) -> None:
        await until_ready(app)
        got = await call(app, "POST", "/api/v1.0/predictions", b'{"data":{"ndarray":[[%d,2]]}}' % first)
        assert got[0] == status and message in got[1]["status"]["info"]
        body = b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[%d,2]}]}' % first
        got = await call(app, "POST", "/v2/models/m/infer", body)
        assert got[0] == status and message in got[1]["error"]
        assert (await call(app, "POST", "/api/v1.0/predictions", b'{"data":{"ndarray":[[1,2]]}}'))[0] == 200

    with_app(Doubler, test)


def test_not_ready_while_loading_then_metrics() -> None:
    import threading

    gate = threading.Event()

    def slow_load() -> Predictor:
        gate.wait(5)
        return Doubler()

    async def test(app: ServingApp) -> str:
        assert (await call(app, "GET", "/v2/health/live"))[0] == 200
        assert (await call(app, "GET", "/v2/health/ready"))[0] == 503
        assert (await call(app, "GET", "/v2/models/m/ready"))[0] == 503
        assert (await call(app, "POST", "/api/v1.0/predictions", b'{"data":{"ndarray":[[1,2]]}}'))[0] == 503
        gate.set()
        await until_ready(app)
        await call(app, "POST", "/api/v1.0/predictions", b'{"data":{"ndarray":[[1,2],[3,4]]}}')
        await call(app, "POST", "/v2/models/m/infer", b"nope")
        return str((await call(app, "GET", "/metrics"))[1])

    text, fatal = with_app(slow_load, test)
    assert not fatal
    assert 'modeldeck_model_requests_total{protocol="v1",code="503"} 1' in text
    assert 'modeldeck_model_requests_total{protocol="v1",code="200"} 1' in text
    assert 'modeldeck_model_requests_total{protocol="v2",code="400"} 1' in text
    assert "modeldeck_model_predictions_total 2" in text
    assert 'modeldeck_model_batch_size_bucket{le="2"} 1' in text
    assert "modeldeck_model_ready 1" in text


def test_load_failure_is_reported_and_stops_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> Predictor:
        raise ModelLoadError("no model here")

    async def test(app: ServingApp) -> int:
        for _ in range(100):
            if app.exit_code:
                break
            await asyncio.sleep(0.01)
        return app.exit_code

    code, fatal = with_app(broken, test)
    assert code == 2 and fatal == [True]
    assert "ModelLoadFailed: no model here" in capsys.readouterr().err
