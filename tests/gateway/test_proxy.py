"""The gateway over real HTTP: real upstream servers, the route table driven directly."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gw_support import (
    AnswersOncePerConnection,
    Echo,
    GatewayServer,
    SendsStrayBytesWhenIdle,
    answers_once,
    closed_address,
    serve,
)

from modeldeck.gateway.routes import Route

TOKEN = "mdc_secret-token-of-the-client"
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()


@pytest.fixture
def echo_a() -> Iterator[tuple[Echo, str]]:
    app = Echo("a")
    with serve(app) as address:
        yield app, address


@pytest.fixture
def echo_b() -> Iterator[tuple[Echo, str]]:
    app = Echo("b")
    with serve(app) as address:
        yield app, address


@pytest.fixture
def gw() -> Iterator[GatewayServer]:
    with GatewayServer(max_body_bytes=1000, upstream_timeout_s=1.0).running() as server:
        yield server


@pytest.fixture
def http(gw: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=10, trust_env=False) as client:
        yield client


def route(dep: str, *addresses: str, **kw: Any) -> Route:
    return Route(dep, replicas=tuple((f"{dep}-r{i}", a) for i, a in enumerate(addresses)), **kw)


def basic(name: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()


def test_routes_path_and_query_to_the_replica(gw: GatewayServer, http: httpx.Client, echo_a: Any) -> None:
    gw.routes.update("iris-abcde", route("iris-abcde", echo_a[1]))
    resp = http.get("/deployment/iris-abcde/some/path%20x", params={"a": "1", "b": "two words"})
    assert resp.status_code == 200
    seen = resp.json()
    assert seen["raw_path"] == "/some/path%20x"
    assert seen["query"] == "a=1&b=two+words"
    assert seen["headers"]["host"] == echo_a[1]
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert http.get("/deployment/iris-abcde").json()["path"] == "/"


@pytest.mark.parametrize("path", ["/api/v1.0/predictions", "/v2/models/iris-abcde/infer"])
def test_both_protocol_paths_carry_the_body(gw: GatewayServer, http: httpx.Client, echo_a: Any, path: str) -> None:
    gw.routes.update("iris-abcde", route("iris-abcde", echo_a[1]))
    payload = {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}
    resp = http.post(f"/deployment/iris-abcde{path}", json=payload, headers={"x-custom": "kept"})
    assert resp.status_code == 200
    seen = resp.json()
    assert (seen["method"], seen["path"]) == ("POST", path)
    assert seen["body"] == httpx.Request("POST", "http://x", json=payload).content.decode()
    assert seen["headers"]["x-custom"] == "kept"
    assert seen["headers"]["content-type"] == "application/json"


def test_chunked_request_body_is_streamed_through(gw: GatewayServer, http: httpx.Client, echo_a: Any) -> None:
    gw.routes.update("d1", route("d1", echo_a[1]))

    def parts() -> Iterator[bytes]:
        yield b"a" * 300
        yield b"b" * 300

    resp = http.post("/deployment/d1/x", content=parts())
    assert resp.status_code == 200
    assert resp.json()["body_length"] == 600


def test_large_streamed_response_arrives_intact(gw: GatewayServer, http: httpx.Client, echo_a: Any) -> None:
    gw.routes.update("d1", route("d1", echo_a[1]))
    resp = http.get("/deployment/d1/bytes", params={"n": 3_000_001})
    assert resp.status_code == 200
    assert resp.content == b"x" * 3_000_001
    assert resp.headers["x-upstream"] == "a"
    head = http.head("/deployment/d1/echo")
    assert head.status_code == 200 and head.content == b""
    assert http.get("/deployment/d1/echo").status_code == 200  # the connection pool survived the HEAD


def test_least_outstanding_requests(gw: GatewayServer, http: httpx.Client, echo_a: Any, echo_b: Any) -> None:
    (a, addr_a), (b, addr_b) = echo_a, echo_b
    gw.routes.update("d1", route("d1", addr_a, addr_b))
    # Idle replicas share the load evenly.
    for _ in range(10):
        assert http.get("/deployment/d1/echo").status_code == 200
    assert (len(a.hits), len(b.hits)) == (5, 5)
    # While one replica holds a slow request, every new request goes to the other one.
    slow = threading.Thread(target=lambda: httpx.get(f"{gw.url}/deployment/d1/sleep?s=0.8", timeout=5))
    slow.start()
    try:
        while "/sleep" not in a.hits + b.hits:
            threading.Event().wait(0.01)
        busy = a if "/sleep" in a.hits else b
        idle = b if busy is a else a
        before = len(idle.hits)
        served = [http.get("/deployment/d1/echo").json()["upstream"] for _ in range(8)]
        assert served == [idle.name] * 8
        assert len(idle.hits) == before + 8
    finally:
        slow.join()


def test_private_endpoint_accepts_basic_and_bearer(gw: GatewayServer, http: httpx.Client, echo_a: Any) -> None:
    gw.routes.update("priv", route("priv", echo_a[1], private=True, clients={DIGEST: "billing"}))
    for auth in (basic("billing", TOKEN), f"Bearer {TOKEN}", f"bearer {TOKEN}"):
        resp = http.get("/deployment/priv/echo", headers={"Authorization": auth, "X-Forwarded-User": "admin"})
        assert resp.status_code == 200, auth
        headers = resp.json()["header_list"]
        assert ["x-forwarded-user", "billing"] in headers
        assert [h for h in headers if h[0] == "x-forwarded-user"] == [["x-forwarded-user", "billing"]]
        assert "authorization" not in resp.json()["headers"]  # the model never sees the client's secret


@pytest.mark.parametrize(
    "auth",
    [None, f"Bearer {TOKEN}x", basic("billing", TOKEN + "x"), basic("someone-else", TOKEN), "Basic !!!",
     basic("billing", "").rstrip(":"), f"Token {TOKEN}", "Bearer"],
)
def test_private_endpoint_refuses_missing_or_wrong_credentials(
    gw: GatewayServer, http: httpx.Client, echo_a: Any, auth: str | None
) -> None:
    gw.routes.update("priv", route("priv", echo_a[1], private=True, clients={DIGEST: "billing"}))
    resp = http.post("/deployment/priv/api/v1.0/predictions", json={}, headers={"Authorization": auth} if auth else {})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Basic realm="modeldeck"'
    assert resp.json()["error"]["code"] == "UNAUTHENTICATED"
    assert echo_a[0].hits == []


def test_public_endpoint_strips_a_spoofed_user_and_passes_authorization(
    gw: GatewayServer, http: httpx.Client, echo_a: Any
) -> None:
    gw.routes.update("pub", route("pub", echo_a[1]))
    resp = http.get("/deployment/pub/echo", headers={"X-Forwarded-User": "admin", "Authorization": "Bearer model"})
    seen = resp.json()["headers"]
    assert "x-forwarded-user" not in seen
    assert seen["authorization"] == "Bearer model"


def test_console_session_cookie_never_reaches_the_model(gw: GatewayServer, http: httpx.Client, echo_a: Any) -> None:
    gw.routes.update("pub", route("pub", echo_a[1]))
    resp = http.get("/deployment/pub/echo", headers={"Cookie": "a=1; modeldeck_session=mds_secret; b=2"})
    assert resp.json()["headers"]["cookie"] == "a=1; b=2"
    resp = http.get("/deployment/pub/echo", headers={"Cookie": "modeldeck_session=mds_secret"})
    assert "cookie" not in resp.json()["headers"]


def test_unknown_stopped_and_not_ready(gw: GatewayServer, http: httpx.Client, echo_a: Any) -> None:
    resp = http.get("/deployment/nope-12345/api/v1.0/predictions")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "NOT_FOUND"
    gw.routes.update("stopped", Route("stopped", state="stopped"))
    resp = http.get("/deployment/stopped/x")
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "DEPLOYMENT_STOPPED"
    gw.routes.update("starting", Route("starting", state="not_ready"))
    assert http.get("/deployment/starting/x").status_code == 503
    gw.routes.update("empty", Route("empty", state="ok", replicas=()))
    assert http.get("/deployment/empty/x").json()["error"]["code"] == "NOT_READY"
    gw.routes.update("empty", None)
    assert http.get("/deployment/empty/x").status_code == 404
    # Private and stopped: credentials first, so the state is not told to strangers.
    gw.routes.update("ps", Route("ps", state="stopped", private=True, clients={DIGEST: "c"}))
    assert http.get("/deployment/ps/x").status_code == 401
    assert http.get("/deployment/ps/x", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 503


def test_connection_refused_is_retried_on_another_replica(
    gw: GatewayServer, http: httpx.Client, echo_a: Any
) -> None:
    dead = closed_address()
    gw.routes.update("d1", route("d1", dead, echo_a[1], closed_address()))
    for _ in range(9):
        resp = http.post("/deployment/d1/api/v1.0/predictions", json={"x": 1})
        assert resp.status_code == 200
    assert len(echo_a[0].hits) == 9
    gw.routes.update("d1", route("d1", dead, closed_address()))
    resp = http.get("/deployment/d1/x")
    assert resp.status_code == 502 and resp.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"


def test_an_upstream_500_is_returned_not_retried(
    gw: GatewayServer, http: httpx.Client, echo_a: Any, echo_b: Any
) -> None:
    gw.routes.update("d1", route("d1", echo_a[1], echo_b[1]))
    statuses = [http.get("/deployment/d1/status/500").status_code for _ in range(6)]
    assert statuses == [500] * 6
    assert len(echo_a[0].hits) + len(echo_b[0].hits) == 6  # one attempt per request


def test_body_limit(gw: GatewayServer, http: httpx.Client, echo_a: Any) -> None:
    gw.routes.update("d1", route("d1", echo_a[1]))
    assert http.post("/deployment/d1/x", content=b"x" * 1000).status_code == 200
    resp = http.post("/deployment/d1/x", content=b"x" * 1001)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    def parts() -> Iterator[bytes]:
        for _ in range(4):
            yield b"y" * 400

    assert http.post("/deployment/d1/x", content=parts()).status_code == 413
    assert http.post("/deployment/d1/x", content=b"z" * 10).status_code == 200


def test_upstream_timeout_is_504(gw: GatewayServer, http: httpx.Client, echo_a: Any) -> None:
    gw.routes.update("d1", route("d1", echo_a[1]))
    resp = http.get("/deployment/d1/sleep", params={"s": 2})
    assert resp.status_code == 504 and resp.json()["error"]["code"] == "UPSTREAM_TIMEOUT"
    assert http.get("/deployment/d1/sleep", params={"s": 0.1}).status_code == 200


def test_pooled_connection_closed_by_the_upstream_is_replaced() -> None:
    app = Echo("a")
    with serve(app, keep_alive_s=1) as address, GatewayServer().running() as gw, \
            httpx.Client(base_url=gw.url, trust_env=False) as http:
        gw.routes.update("d1", route("d1", address))
        assert http.post("/deployment/d1/x", json={}).status_code == 200
        threading.Event().wait(1.5)  # the upstream drops the idle keep-alive connection
        assert http.post("/deployment/d1/x", json={}).status_code == 200
        assert len(app.hits) == 2


def test_requests_are_counted_by_status_code(gw: GatewayServer, http: httpx.Client, echo_a: Any) -> None:
    gw.routes.update("d1", route("d1", echo_a[1]))
    gw.routes.update("priv", route("priv", echo_a[1], private=True, clients={DIGEST: "c"}))
    for _ in range(3):
        http.get("/deployment/d1/echo")
    http.get("/deployment/d1/status/404")
    http.get("/deployment/d1/status/503")
    http.get("/deployment/priv/echo")
    http.get("/deployment/unknown-1/echo")
    stats = gw.metrics.requests["d1"]
    assert stats.codes == {200: 3, 404: 1, 503: 1}
    assert stats.count == 5 and sum(stats.buckets) == 5 and stats.latency_sum > 0
    assert gw.metrics.requests["priv"].codes == {401: 1}
    assert "unknown-1" not in gw.metrics.requests
    snap = stats.snapshot()
    assert (snap.requests, snap.errors_4xx, snap.errors_5xx) == (5, 1, 1)


def test_upstream_connections_are_kept_alive_and_reused(gw: GatewayServer, http: httpx.Client, echo_a: Any) -> None:
    gw.routes.update("d1", route("d1", echo_a[1]))
    ports = {http.post("/deployment/d1/x", json={"i": i}).json()["client_port"] for i in range(20)}
    assert len(ports) == 1


def test_a_reused_connection_closed_unanswered_is_sent_again_on_a_fresh_one(
    gw: GatewayServer, http: httpx.Client
) -> None:
    with answers_once() as address:
        gw.routes.update("d1", route("d1", address))
        for _ in range(3):
            resp = http.post("/deployment/d1/api/v1.0/predictions", json={"x": 1})
            assert resp.status_code == 200 and resp.json() == {"ok": True}
        assert AnswersOncePerConnection.connections == 3


def test_bytes_on_an_idle_pooled_connection_are_not_taken_for_the_next_answer(
    gw: GatewayServer, http: httpx.Client
) -> None:
    with answers_once(SendsStrayBytesWhenIdle) as address:
        gw.routes.update("d1", route("d1", address))
        assert http.post("/deployment/d1/x", json={}).status_code == 200
        threading.Event().wait(0.4)  # the stray 408 arrives while the connection sits in the pool
        resp = http.post("/deployment/d1/x", json={})
        assert resp.status_code == 200 and resp.json() == {"ok": True}
        assert SendsStrayBytesWhenIdle.connections == 2
