"""Logs API over the FakeRuntime: who may read, parameter validation, text/plain, follow and the WebSocket."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from api.factories import World
from modeldeck.runtimes.base import ReplicaSpec
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, controller_enabled=False)  # replicas come from the test, not the controller


@pytest.fixture
def world(client: TestClient) -> World:
    return World(client)


@pytest.fixture
def dep(world: World, fake_runtime: FakeRuntime) -> str:
    deployment_id: str = world.create()["id"]
    for index in (0, 1):
        fake_runtime.start_replica(ReplicaSpec(
            deployment_id=deployment_id, version=1, index=index, image="modeldeck/sklearn-server:1",
            model_uri=None, env={}, cpu=1, memory=1 << 30, gpu=0,
        ))
    return deployment_id


def logs_url(deployment_id: str, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/v1/deployments/{deployment_id}/logs" + (f"?{query}" if query else "")


def test_who_may_read_logs(client: TestClient, world: World, dep: str) -> None:
    for headers in (world.alice, world.carol, world.admin):
        resp = client.get(logs_url(dep), headers=headers)
        assert resp.status_code == 200, resp.text
    resp = client.get(logs_url(dep))
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "UNAUTHENTICATED"
    assert client.get(logs_url(dep), headers={"Authorization": "Bearer mdk_forged"}).status_code == 401
    for url in (logs_url(dep), logs_url(dep, follow="true")):
        resp = client.get(url, headers=world.bob)  # another group's deployment does not exist for bob
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "NOT_FOUND"
    assert client.get(logs_url("no-such-deployment"), headers=world.admin).status_code == 404


def test_plain_text_merged_and_per_replica(client: TestClient, world: World, dep: str) -> None:
    resp = client.get(logs_url(dep), headers=world.alice)
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text.splitlines() == [
        f"[{dep}-g1-r0] started {dep}-g1-r0 image=modeldeck/sklearn-server:1",
        f"[{dep}-g1-r1] started {dep}-g1-r1 image=modeldeck/sklearn-server:1",
    ]
    one = client.get(logs_url(dep, replica=f"{dep}-g1-r1", tail=1), headers=world.alice)
    assert one.text == f"started {dep}-g1-r1 image=modeldeck/sklearn-server:1\n"
    assert client.get(logs_url(dep, replica=f"{dep}-g7-r0"), headers=world.alice).text == ""


@pytest.mark.parametrize("tail", ["0", "-1", "10001", "abc", "1.5"])
def test_tail_must_be_1_to_10000(client: TestClient, world: World, dep: str, tail: str) -> None:
    resp = client.get(logs_url(dep, tail=tail), headers=world.alice)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "VALIDATION_ERROR"


def test_tail_bounds_and_replica_names(client: TestClient, world: World, dep: str) -> None:
    assert client.get(logs_url(dep, tail=1), headers=world.alice).status_code == 200
    assert client.get(logs_url(dep, tail=10000), headers=world.alice).status_code == 200
    for bad in ("../../etc/passwd", "other-g1-r0", f"{dep}-g1", f"{dep}-g1-r0x"):
        resp = client.get(logs_url(dep, replica=bad), headers=world.alice)
        assert resp.status_code == 422, bad
        assert "replica" in resp.json()["error"]["message"]


def test_follow_streams_text(client: TestClient, world: World, dep: str) -> None:
    with client.stream("GET", logs_url(dep, follow="true", replica=f"{dep}-g1-r0"), headers=world.alice) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/plain")
        assert resp.headers["cache-control"] == "no-cache"
        first = next(resp.iter_lines())
    assert first == f"started {dep}-g1-r0 image=modeldeck/sklearn-server:1"


def ws_url(deployment_id: str, query: str = "") -> str:
    return f"/api/v1/deployments/{deployment_id}/logs/ws" + (f"?{query}" if query else "")


def test_websocket_sends_the_tail_then_new_lines(client: TestClient, world: World, dep: str) -> None:
    with client.websocket_connect(ws_url(dep, "tail=5"), headers=world.alice) as ws:
        assert ws.receive_text() == (
            f"[{dep}-g1-r0] started {dep}-g1-r0 image=modeldeck/sklearn-server:1\n"
            f"[{dep}-g1-r1] started {dep}-g1-r1 image=modeldeck/sklearn-server:1\n"
        )
        streamed = [ws.receive_text(), ws.receive_text()]  # the fake "follows" by replaying its lines
        assert all(line.startswith(f"[{dep}-g1-r") for line in streamed)
        with pytest.raises(WebSocketDisconnect):  # the fake's stream ends: the server closes
            ws.receive_text()


def denied(client: TestClient, url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect(url, headers=headers or {}):
        pass
    status: int = refused.value.status_code
    return status


def test_websocket_checks_the_caller(client: TestClient, world: World, dep: str) -> None:
    assert denied(client, ws_url(dep)) == 401
    assert denied(client, ws_url(dep), world.bob) == 404
    assert denied(client, ws_url("no-such-deployment"), world.admin) == 404
    assert denied(client, ws_url(dep, "tail=0"), world.alice) == 422
    assert denied(client, ws_url(dep, "replica=other-g1-r0"), world.alice) == 422
    # A page on another site cannot ride the console's cookie.
    assert denied(client, ws_url(dep), {**world.alice, "Origin": "https://evil.example"}) == 403
    with client.websocket_connect(ws_url(dep), headers={**world.admin, "Origin": "http://testserver"}) as ws:
        assert ws.receive_text().startswith(f"[{dep}-g1-r0] ")
