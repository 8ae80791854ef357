"""The metrics API, /metrics, and the gateway as create_app wires it (controller -> routes -> gateway)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.factories import World
from modeldeck.metrics.store import Point, ReplicaPoint, Series
from modeldeck.settings import Settings

METRICS_TOKEN = "prometheus-scrape-token-for-tests"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, metrics_token=METRICS_TOKEN)


@pytest.fixture
def world(client: TestClient) -> World:
    return World(client)


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def deployed(client: TestClient, world: World, **overrides: Any) -> str:
    dep_id: str = world.create(**overrides)["id"]
    routes = client.app.state.platform.routes  # type: ignore[attr-defined]
    wait_for(lambda: (r := routes.get(dep_id)) is not None and r.replicas)
    return dep_id


def test_metrics_api_auth_matrix(client: TestClient, world: World) -> None:
    dep_id = world.create()["id"]
    url = f"/api/v1/deployments/{dep_id}/metrics"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=world.bob).status_code == 404  # another group's: not even its existence
    assert client.get(url, headers=world.alice).status_code == 200
    assert client.get(url, headers=world.admin).status_code == 200
    assert client.get("/api/v1/deployments/nope-00000/metrics", headers=world.admin).status_code == 404
    resp = client.get(url, params={"window": "2h"}, headers=world.alice)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "VALIDATION_ERROR"


def test_metrics_series_and_health(client: TestClient, world: World) -> None:
    dep_id = deployed(client, world, replicas=2)
    store = client.app.state.platform.metrics  # type: ignore[attr-defined]
    now = int(time.time())
    series = store.series.setdefault(dep_id, Series())
    usage = {"r0": ReplicaPoint(0.5, 100 << 20, 0.25, 1 << 30)}
    crafted = [
        Point(now - 20, 50, 5, 10, 500, 5.0, 0.010, 0.050, 0.100, usage),
        Point(now - 15, 0, 0, 0, 0, 5.0, None, None, None, {}),
        Point(now - 7200, 1, 0, 0, 0, 5.0, 0.001, 0.001, 0.001, {}),  # outside 5m and 1h
    ]
    series.fine.extend(sorted(crafted, key=lambda p: p.t))

    body = client.get(f"/api/v1/deployments/{dep_id}/metrics", headers=world.alice).json()
    assert (body["deployment_id"], body["window"], body["resolution_s"]) == (dep_id, "5m", 5)
    i = body["timestamps"].index(now - 20)
    assert now - 7200 not in body["timestamps"]
    assert body["rps"][i] == 10.0 and body["qps"][i] == 100.0 and body["requests"][i] == 50
    assert body["latency_ms"]["p50"][i] == 10.0 and body["latency_ms"]["p99"][i] == 100.0
    assert body["error_rate"][i] == 0.2 and body["errors_4xx"][i] == 5 and body["errors_5xx"][i] == 10
    assert body["error_rate"][i + 1] is None and body["latency_ms"]["p95"][i + 1] is None
    [r0] = [r for r in body["replicas"] if r["name"] == "r0"]
    assert (r0["cpu"][i], r0["memory"][i], r0["gpu_utilization"][i], r0["gpu_memory"][i]) == (
        0.5, 100 << 20, 0.25, 1 << 30)
    assert r0["cpu"][i + 1] is None
    assert len(body["timestamps"]) == len(body["rps"]) == len(r0["memory"])
    health = body["health"]
    assert health["desired_replicas"] == 2 and health["requests_5m"] >= 50
    assert health["error_rate_5m"] is not None

    assert client.get(f"/api/v1/deployments/{dep_id}/metrics?window=1h", headers=world.alice).json()[
        "resolution_s"] == 5
    day = client.get(f"/api/v1/deployments/{dep_id}/metrics?window=24h", headers=world.alice).json()
    assert day["resolution_s"] == 60 and now - 20 not in day["timestamps"]


def test_gateway_follows_the_controller(client: TestClient, world: World) -> None:
    """Routes are published by the controller; the fake runtime's replicas have no real address, so a
    routed request ends in 502 after the connect attempt: proof it was routed, counted by code."""
    dep_id = deployed(client, world)
    assert client.post(f"/deployment/{dep_id}/api/v1.0/predictions", json={}).status_code == 502
    assert client.get("/deployment/unknown-00000/x").status_code == 404
    assert client.post(f"/api/v1/deployments/{dep_id}/stop", headers=world.alice).status_code == 200
    routes = client.app.state.platform.routes  # type: ignore[attr-defined]
    wait_for(lambda: routes.get(dep_id).state == "stopped")
    resp = client.get(f"/deployment/{dep_id}/api/v1.0/predictions")
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "DEPLOYMENT_STOPPED"
    store = client.app.state.platform.metrics  # type: ignore[attr-defined]
    assert store.requests[dep_id].codes == {502: 1, 503: 1}
    assert client.delete(f"/api/v1/deployments/{dep_id}", headers=world.alice).status_code == 204
    wait_for(lambda: routes.get(dep_id) is None)
    assert client.get(f"/deployment/{dep_id}/x").status_code == 404


def test_private_endpoint_credentials_come_from_the_store(client: TestClient, world: World) -> None:
    dep_id = deployed(client, world, endpoint_access="private")
    url = f"/deployment/{dep_id}/api/v1.0/predictions"
    resp = client.post(url, json={})
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == 'Basic realm="modeldeck"'
    created = client.post(f"/api/v1/deployments/{dep_id}/clients", json={"name": "billing"}, headers=world.alice)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    # Past the credential check, the request is routed (502: the fake replica has no real address).
    wait_for(lambda: client.post(url, json={}, headers={"Authorization": f"Bearer {token}"}).status_code == 502)
    assert client.post(url, json={}, auth=("billing", token)).status_code == 502
    assert client.post(url, json={}, auth=("billing", token + "x")).status_code == 401


# -- Prometheus exposition -----------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|\+Inf|NaN)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> list[tuple[str, dict[str, str], float]]:
    """A small parser of the text format: every line a comment or a well-formed sample."""
    types: dict[str, str] = {}
    samples = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram")
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"malformed line: {line!r}"
        name, _, labels, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no TYPE"
        parsed = dict(_LABEL.findall(labels or ""))
        assert ",".join(f'{k}="{v}"' for k, v in parsed.items()) == (labels or "")
        samples.append((name, parsed, float(value)))
    return samples


def test_prometheus_exposition(client: TestClient, world: World) -> None:
    dep_id = deployed(client, world)
    for _ in range(3):
        client.post(f"/deployment/{dep_id}/api/v1.0/predictions", json={})
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=world.alice).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    resp = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert client.get("/metrics", headers=world.admin).status_code == 200
    samples = parse_exposition(resp.text)
    mine = [(n, labels, v) for n, labels, v in samples if labels.get("deployment") == dep_id]
    assert ("modeldeck_gateway_requests_total", {"deployment": dep_id, "code": "502"}, 3.0) in mine
    buckets = [v for n, _, v in mine if n == "modeldeck_gateway_request_duration_seconds_bucket"]
    assert buckets == sorted(buckets) and buckets[-1] == 3.0
    count = [v for n, _, v in mine if n == "modeldeck_gateway_request_duration_seconds_count"]
    assert count == [3.0]
    assert ("modeldeck_deployment_replicas_available", {"deployment": dep_id}, 1.0) in mine
    assert ("modeldeck_deployment_replicas_desired", {"deployment": dep_id}, 1.0) in mine
    assert "/metrics" not in client.get("/api/v1/openapi.json").json()["paths"]
