"""Groups: admin writes, member reads, quota and usage, membership, deletion rules."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.factories import make_user, platform_db
from modeldeck.deployments.tables import Deployment
from modeldeck.groups.tables import Group
from support import json_of

FULL = {
    "name": "team-a",
    "display_name": "Team A",
    "deployments_enabled": True,
    "max_deployments": 3,
    "quota": {"cpu": 4.5, "memory": "8Gi", "gpu": 1},
    "members": [],
}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    """An administrator with an API token written to the store (login and its argon2 check have their own tests)."""
    return make_user(platform_db(client), "root", role="admin")


def add_deployment(client: TestClient, group: str, dep_id: str, *, replicas: int, stopped: bool = False) -> None:
    with client.app.state.platform.db.write() as session:  # type: ignore[attr-defined]
        group_id = session.scalar(select(Group.id).where(Group.name == group))
        assert group_id is not None
        session.add(
            Deployment(
                id=dep_id,
                name=dep_id,
                group_id=group_id,
                instance_type="small",
                replicas=replicas,
                image="modeldeck/sklearn-server:1",
                stopped=stopped,
                created_by="admin",
                updated_by="admin",
            )
        )


def test_create_read_update(client: TestClient, admin: dict[str, str]) -> None:
    make_user(platform_db(client), "alice")
    resp = client.post("/api/v1/groups", headers=admin, json={**FULL, "members": ["alice"]})
    created = json_of(resp)
    assert resp.status_code == 201
    assert created["name"] == "team-a" and created["display_name"] == "Team A"
    assert created["deployments_enabled"] is True and created["max_deployments"] == 3
    assert created["quota"] == {"cpu": 4.5, "memory": "8Gi", "gpu": 1}
    assert created["members"] == ["alice"]
    assert created["usage"] == {"deployments": 0, "cpu": 0.0, "memory": "0", "gpu": 0}
    assert client.get("/api/v1/groups/team-a", headers=admin).json() == created

    # Defaults: disabled, unlimited.
    bare = client.post("/api/v1/groups", headers=admin, json={"name": "b"}).json()
    assert bare["deployments_enabled"] is False and bare["max_deployments"] is None
    assert bare["quota"] == {"cpu": None, "memory": None, "gpu": None} and bare["members"] == []

    # PATCH is partial, down to single quota limits; null means unlimited.
    resp = client.patch("/api/v1/groups/team-a", headers=admin, json={"quota": {"gpu": None, "memory": "1.5Gi"}})
    assert resp.json()["quota"] == {"cpu": 4.5, "memory": "1536Mi", "gpu": None}
    resp = client.patch("/api/v1/groups/team-a", headers=admin, json={"max_deployments": None, "members": []})
    body = resp.json()
    assert body["max_deployments"] is None and body["members"] == [] and body["display_name"] == "Team A"
    resp = client.patch(
        "/api/v1/groups/team-a", headers=admin, json={"deployments_enabled": False, "max_deployments": 0}
    )
    assert (resp.json()["deployments_enabled"], resp.json()["max_deployments"]) == (False, 0)
    assert [g["name"] for g in client.get("/api/v1/groups", headers=admin).json()] == ["b", "team-a"]


def test_usage_counts_running_deployments(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/api/v1/groups", headers=admin, json=FULL)
    client.post(
        "/api/v1/instance-types",
        headers=admin,
        json={"name": "small", "cpu": 0.5, "memory": "1Gi", "gpu": 1, "global": True},
    )
    add_deployment(client, "team-a", "one-aaaaa", replicas=2)
    add_deployment(client, "team-a", "two-bbbbb", replicas=1)
    add_deployment(client, "team-a", "off-ccccc", replicas=5, stopped=True)
    usage = client.get("/api/v1/groups/team-a", headers=admin).json()["usage"]
    assert usage == {"deployments": 2, "cpu": 1.5, "memory": "3Gi", "gpu": 3}


def test_delete_refuses_while_deployments_remain(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/api/v1/groups", headers=admin, json=FULL)
    add_deployment(client, "team-a", "one-aaaaa", replicas=1)
    add_deployment(client, "team-a", "off-ccccc", replicas=1, stopped=True)
    resp = client.delete("/api/v1/groups/team-a", headers=admin)
    assert resp.status_code == 409 and json_of(resp)["error"]["code"] == "CONFLICT"
    assert "2 deployments" in resp.json()["error"]["message"]
    assert client.get("/api/v1/groups/team-a", headers=admin).status_code == 200

    with client.app.state.platform.db.write() as session:  # type: ignore[attr-defined]
        for dep in session.scalars(select(Deployment)):
            session.delete(dep)
    assert client.delete("/api/v1/groups/team-a", headers=admin).status_code == 204
    assert client.get("/api/v1/groups/team-a", headers=admin).status_code == 404
    assert client.delete("/api/v1/groups/team-a", headers=admin).status_code == 404


def test_members_see_only_their_groups(client: TestClient, admin: dict[str, str]) -> None:
    alice = make_user(platform_db(client), "alice")
    for name, members in (("team-a", ["alice"]), ("team-b", []), ("team-c", ["alice"])):
        client.post("/api/v1/groups", headers=admin, json={"name": name, "members": members})
    assert [g["name"] for g in client.get("/api/v1/groups", headers=alice).json()] == ["team-a", "team-c"]
    assert client.get("/api/v1/groups/team-a", headers=alice).json()["members"] == ["alice"]
    hidden = client.get("/api/v1/groups/team-b", headers=alice)
    missing = client.get("/api/v1/groups/team-z", headers=alice)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "NOT_FOUND"
    for method, body in (("PATCH", {"display_name": "x"}), ("DELETE", None)):
        assert client.request(method, "/api/v1/groups/team-a", headers=alice, json=body).status_code == 403
    assert client.post("/api/v1/groups", headers=alice, json={"name": "mine"}).status_code == 403


def test_validation_table(client: TestClient, admin: dict[str, str]) -> None:
    make_user(platform_db(client), "alice")
    ok: dict[str, Any] = {"name": "g"}
    bad: list[tuple[dict[str, Any], str]] = [
        ({"name": "Team"}, "name"),
        ({"name": "-team"}, "name"),
        ({"name": "team_a"}, "name"),
        ({"name": "team.a"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "t" * 64}, "name"),
        ({"name": "team\n"}, "name"),
        ({"name": 12}, "name"),
        ({}, "name"),
        ({**ok, "display_name": "x" * 256}, "display_name"),
        ({**ok, "display_name": 5}, "display_name"),
        ({**ok, "deployments_enabled": "yes"}, "deployments_enabled"),
        ({**ok, "deployments_enabled": 1}, "deployments_enabled"),
        ({**ok, "max_deployments": -1}, "max_deployments"),
        ({**ok, "max_deployments": 1.5}, "max_deployments"),
        ({**ok, "max_deployments": "3"}, "max_deployments"),
        ({**ok, "max_deployments": 10**12}, "max_deployments"),
        ({**ok, "quota": {"cpu": -1}}, "quota.cpu"),
        ({**ok, "quota": {"cpu": "2"}}, "quota.cpu"),
        ({**ok, "quota": {"cpu": True}}, "quota.cpu"),
        ({**ok, "quota": {"gpu": -2}}, "quota.gpu"),
        ({**ok, "quota": {"gpu": 1.5}}, "quota.gpu"),
        ({**ok, "quota": {"memory": "-1Gi"}}, "quota.memory"),
        ({**ok, "quota": {"memory": "8GB"}}, "quota.memory"),
        ({**ok, "quota": {"memory": "lots"}}, "quota.memory"),
        ({**ok, "quota": {"memory": ""}}, "quota.memory"),
        ({**ok, "quota": {"memory": 8}}, "quota.memory"),
        ({**ok, "quota": {"memory": "99999999Pi"}}, "quota.memory"),
        ({**ok, "quota": {"disk": "1Gi"}}, "quota.disk"),
        ({**ok, "quota": []}, "quota"),
        ({**ok, "members": "alice"}, "members"),
        ({**ok, "members": ["alice", "ghost", "casper"]}, "casper, ghost"),
        ({**ok, "admins": []}, "admins"),
    ]
    wrong = {}
    for body, mentioned in bad:
        resp = client.post("/api/v1/groups", headers=admin, json=body)
        error = resp.json().get("error", {})
        if resp.status_code != 422 or error.get("code") != "VALIDATION_ERROR" or mentioned not in error["message"]:
            wrong[repr(body)] = (resp.status_code, resp.text)
    # NaN and Infinity are valid for Python's JSON parser, not for a quota.
    for raw in ('{"name": "g", "quota": {"cpu": NaN}}', '{"name": "g", "quota": {"cpu": Infinity}}', "{", ""):
        resp = client.post("/api/v1/groups", headers={**admin, "content-type": "application/json"}, content=raw)
        if resp.status_code != 422:
            wrong[raw] = (resp.status_code, resp.text)
    assert not wrong
    assert client.get("/api/v1/groups", headers=admin).json() == []

    assert client.post("/api/v1/groups", headers=admin, json=ok).status_code == 201
    for patch in ({"name": "h"}, {"display_name": None}, {"deployments_enabled": None}, {"members": None},
                  {"quota": None}, {"quota": {"cpu": -0.5}}, {"members": ["ghost"]}):  # fmt: skip
        resp = client.patch("/api/v1/groups/g", headers=admin, json=patch)
        assert resp.status_code == 422 and json_of(resp)["error"]["code"] == "VALIDATION_ERROR", patch
    assert client.get("/api/v1/groups/g", headers=admin).json()["members"] == []

    # Duplicates conflict; names that do not exist (or cannot) are not found.
    assert client.post("/api/v1/groups", headers=admin, json=FULL).status_code == 201
    resp = client.post("/api/v1/groups", headers=admin, json=FULL)
    assert resp.status_code == 409 and json_of(resp)["error"]["code"] == "CONFLICT"
    requests: list[tuple[str, Any]] = [("GET", None), ("PATCH", {"display_name": "x"}), ("DELETE", None)]
    for method, patch in requests:
        for name, status in (("nope", 404), ("Bad_Name", 404), ("%00", 404), ("x" * 300, 422)):
            resp = client.request(method, f"/api/v1/groups/{name}", headers=admin, json=patch)
            assert resp.status_code == status and "error" in resp.json(), (method, name)
