"""Who may reach which deployment: members of its group and admins; nobody else learns it exists."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.factories import World
from modeldeck.settings import Settings

PREFIXES = ("/api/v1/deployments", "/api/v1/deployment-ids")
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/api/v1/deployments/{deployment_id}"): {"replicas": 2},
    ("POST", "/api/v1/deployments/{deployment_id}/rollback"): {"version": 1},
    ("POST", "/api/v1/deployments/{deployment_id}/clients"): {"name": "intruder"},
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, controller_enabled=False)


@pytest.fixture
def world(client: TestClient) -> World:
    return World(client)


def deployment_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every API operation under the deployment prefixes, the other engineers' ones included."""
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    found = [
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(PREFIXES)
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(found) >= 14
    return found


def call(client: TestClient, method: str, path: str, headers: dict[str, str] | None) -> Any:
    url = path.format(deployment_id="team-dep", version=1, name="c1")
    return client.request(method, url, json=BODIES.get((method, path)), headers=headers or {})


def test_anonymous_gets_401_everywhere(client: TestClient, world: World) -> None:
    world.create(id="team-dep")
    for method, path in deployment_routes(client):
        resp = call(client, method, path, None)
        assert resp.status_code == 401, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "UNAUTHENTICATED"
        bad = call(client, method, path, {"Authorization": "Bearer mdk_not-a-real-token"})
        assert bad.status_code == 401, (method, path)


def test_other_group_member_gets_404_on_every_deployment_route(client: TestClient, world: World) -> None:
    dep = world.create(id="team-dep", endpoint_access="private")
    client.post("/api/v1/deployments/team-dep/clients", json={"name": "c1"}, headers=world.alice)
    checked = 0
    for method, path in deployment_routes(client):
        if "{deployment_id}" not in path or path.startswith("/api/v1/deployment-ids"):
            continue
        resp = call(client, method, path, world.bob)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
        assert "team-dep" in resp.json()["error"]["message"] or resp.json()["error"]["code"] == "NOT_FOUND"
        checked += 1
    assert checked >= 12
    after = client.get("/api/v1/deployments/team-dep", headers=world.alice).json()
    assert after["version"] == dep["version"] + 1 and after["clients"] == ["c1"] and after["replicas"] == 1


def test_group_members_and_admins_share_everything(client: TestClient, world: World) -> None:
    world.create(id="team-dep")
    for who in (world.carol, world.admin):
        for method, path in deployment_routes(client):
            if method != "GET" or path.endswith("/logs") or "{name}" in path:
                continue
            resp = call(client, method, path, who)
            assert resp.status_code == 200, (method, path, resp.text)
    resp = client.patch("/api/v1/deployments/team-dep", json={"replicas": 2}, headers=world.admin)
    assert resp.status_code == 200 and resp.json()["updated_by"] == "root"


def test_id_availability_is_open_to_any_user(client: TestClient, world: World) -> None:
    world.create(id="team-dep")
    resp = client.get("/api/v1/deployment-ids/team-dep/available", headers=world.bob)
    assert resp.json()["available"] is False
