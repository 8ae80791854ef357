"""Instance types: admin writes, visibility by group, validation, deletion and usable_instance_type."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.factories import make_user, platform_db
from modeldeck.deployments.tables import Deployment
from modeldeck.errors import ValidationFailed
from modeldeck.groups.tables import Group
from modeldeck.instance_types.service import usable_instance_type
from support import json_of

GPU = {
    "name": "gpu-1",
    "display_name": "1 GPU",
    "description": "one T4",
    "cpu": 3.5,
    "memory": "16Gi",
    "gpu": 1,
    "node_selector": {"nvidia.com/gpu.product": "Tesla-T4"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "global": False,
    "groups": ["team"],
}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    """An administrator with an API token written to the store (login and its argon2 check have their own tests)."""
    return make_user(platform_db(client), "root", role="admin")


@pytest.fixture
def setup(client: TestClient, admin: dict[str, str]) -> dict[str, dict[str, str]]:
    """Groups team/other/empty, alice in team, bob in other; types gpu-1 (team), cpu-1 (global), big (other)."""
    for name in ("team", "other", "empty"):
        assert client.post("/api/v1/groups", headers=admin, json={"name": name}).status_code == 201
    users = {
        "admin": admin,
        "alice": make_user(platform_db(client), "alice", groups=("team",)),
        "bob": make_user(platform_db(client), "bob", groups=("other",)),
    }
    for body in (GPU, {"name": "cpu-1", "cpu": 1, "memory": "2Gi", "global": True},
                 {"name": "big", "cpu": 16, "memory": "64Gi", "groups": ["other"]}):  # fmt: skip
        resp = client.post("/api/v1/instance-types", headers=admin, json=body)
        assert resp.status_code == 201, resp.text
    return users


def names(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [t["name"] for t in resp.json()]


def group_id(client: TestClient, name: str) -> int:
    with client.app.state.platform.db.read() as session:  # type: ignore[attr-defined]
        found = session.scalar(select(Group.id).where(Group.name == name))
        assert found is not None
        return found


def test_create_echoes_the_type(client: TestClient, setup: dict[str, dict[str, str]]) -> None:
    body = client.get("/api/v1/instance-types/gpu-1", headers=setup["admin"]).json()
    assert {k: v for k, v in body.items() if k != "created_at"} == GPU
    half = client.post(
        "/api/v1/instance-types", headers=setup["admin"], json={"name": "half", "cpu": 0.25, "memory": "1536Mi"}
    ).json()
    assert (half["cpu"], half["memory"], half["gpu"], half["global"], half["groups"]) == (0.25, "1536Mi", 0, False, [])
    assert half["node_selector"] == {} and half["tolerations"] == []


def test_visibility(client: TestClient, setup: dict[str, dict[str, str]]) -> None:
    admin, alice, bob = setup["admin"], setup["alice"], setup["bob"]
    assert names(client.get("/api/v1/instance-types", headers=admin)) == ["big", "cpu-1", "gpu-1"]
    assert names(client.get("/api/v1/instance-types", headers=alice)) == ["cpu-1", "gpu-1"]
    assert names(client.get("/api/v1/instance-types", headers=bob)) == ["big", "cpu-1"]
    assert names(client.get("/api/v1/instance-types?group=team", headers=alice)) == ["cpu-1", "gpu-1"]
    assert names(client.get("/api/v1/instance-types?group=team", headers=admin)) == ["cpu-1", "gpu-1"]
    assert names(client.get("/api/v1/instance-types?group=empty", headers=admin)) == ["cpu-1"]
    for who, group in ((bob, "team"), (alice, "nope"), (admin, "nope"), (alice, "Bad\x00")):
        resp = client.get("/api/v1/instance-types", params={"group": group}, headers=who)
        assert resp.status_code == 404 and json_of(resp)["error"]["code"] == "NOT_FOUND", group

    assert client.get("/api/v1/instance-types/gpu-1", headers=alice).status_code == 200
    assert client.get("/api/v1/instance-types/cpu-1", headers=bob).status_code == 200
    for name in ("gpu-1", "nope"):  # someone else's type looks exactly like a missing one
        resp = client.get(f"/api/v1/instance-types/{name}", headers=bob)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "NOT_FOUND"

    # Non-admins only see their own groups in a type's group list.
    client.patch("/api/v1/instance-types/gpu-1", headers=admin, json={"groups": ["team", "other"]})
    assert client.get("/api/v1/instance-types/gpu-1", headers=alice).json()["groups"] == ["team"]
    assert client.get("/api/v1/instance-types/gpu-1", headers=bob).json()["groups"] == ["other"]
    assert client.get("/api/v1/instance-types/gpu-1", headers=admin).json()["groups"] == ["other", "team"]


def test_update(client: TestClient, setup: dict[str, dict[str, str]]) -> None:
    admin = setup["admin"]
    resp = client.patch("/api/v1/instance-types/gpu-1", headers=admin, json={"memory": "0.5Gi", "cpu": 2})
    body = resp.json()
    assert resp.status_code == 200 and body["memory"] == "512Mi" and body["cpu"] == 2.0
    assert body["description"] == "one T4" and body["groups"] == ["team"]
    # Global and groups are exclusive; switching means sending both.
    resp = client.patch("/api/v1/instance-types/gpu-1", headers=admin, json={"global": True})
    assert resp.status_code == 422 and "global" in resp.json()["error"]["message"]
    resp = client.patch("/api/v1/instance-types/gpu-1", headers=admin, json={"global": True, "groups": []})
    assert resp.json()["global"] is True and resp.json()["groups"] == []
    assert "gpu-1" in names(client.get("/api/v1/instance-types", headers=setup["bob"]))
    resp = client.patch("/api/v1/instance-types/gpu-1", headers=admin, json={"tolerations": [], "node_selector": {}})
    assert resp.json()["tolerations"] == [] and resp.json()["node_selector"] == {}


def test_delete_refuses_while_a_running_deployment_uses_it(
    client: TestClient, setup: dict[str, dict[str, str]]
) -> None:
    admin = setup["admin"]
    with client.app.state.platform.db.write() as session:  # type: ignore[attr-defined]
        for dep_id, stopped in (("run-aaaaa", False), ("off-bbbbb", True)):
            session.add(
                Deployment(
                    id=dep_id,
                    name=dep_id,
                    group_id=group_id(client, "team"),
                    instance_type="gpu-1",
                    replicas=1,
                    image="img",
                    stopped=stopped,
                    created_by="a",
                    updated_by="a",
                )
            )
    resp = client.delete("/api/v1/instance-types/gpu-1", headers=admin)
    assert resp.status_code == 409 and json_of(resp)["error"]["code"] == "CONFLICT"
    assert "1 running deployment" in resp.json()["error"]["message"]
    with client.app.state.platform.db.write() as session:  # type: ignore[attr-defined]
        dep = session.get(Deployment, "run-aaaaa")
        assert dep is not None
        dep.stopped = True
    assert client.delete("/api/v1/instance-types/gpu-1", headers=admin).status_code == 204
    assert client.get("/api/v1/instance-types/gpu-1", headers=admin).status_code == 404
    assert client.delete("/api/v1/instance-types/gpu-1", headers=admin).status_code == 404


def test_usable_instance_type(client: TestClient, setup: dict[str, dict[str, str]]) -> None:
    db = client.app.state.platform.db  # type: ignore[attr-defined]
    team, other, empty = (group_id(client, n) for n in ("team", "other", "empty"))
    with db.read() as session:
        assert usable_instance_type(session, name="gpu-1", group_id=team).name == "gpu-1"
        assert usable_instance_type(session, name="cpu-1", group_id=empty).name == "cpu-1"
        with pytest.raises(ValidationFailed) as err:
            usable_instance_type(session, name="gpu-1", group_id=other)
        assert err.value.status == 422
        assert err.value.message == "instance type 'gpu-1' is not available to group 'other'; it may use: big, cpu-1"
        with pytest.raises(ValidationFailed, match="'nope' is not available to group 'team'; it may use: cpu-1, gpu-1"):
            usable_instance_type(session, name="nope", group_id=team)
    client.delete("/api/v1/instance-types/cpu-1", headers=setup["admin"])
    with db.read() as session, pytest.raises(ValidationFailed, match="no instance type is available"):
        usable_instance_type(session, name="gpu-1", group_id=empty)


def test_validation_table(client: TestClient, setup: dict[str, dict[str, str]]) -> None:
    admin = setup["admin"]
    ok: dict[str, Any] = {"name": "t", "cpu": 1, "memory": "1Gi", "global": True}
    bad: list[tuple[dict[str, Any], str]] = [
        ({**ok, "name": "T"}, "name"),
        ({**ok, "name": "-t"}, "name"),
        ({**ok, "name": "t_1"}, "name"),
        ({**ok, "name": "t" * 64}, "name"),
        ({**ok, "name": ""}, "name"),
        ({**ok, "cpu": 0}, "cpu"),
        ({**ok, "cpu": -1}, "cpu"),
        ({**ok, "cpu": "1"}, "cpu"),
        ({**ok, "cpu": 10**6}, "cpu"),
        ({k: v for k, v in ok.items() if k != "cpu"}, "cpu"),
        ({**ok, "memory": "0"}, "memory"),
        ({**ok, "memory": "0Gi"}, "memory"),
        ({**ok, "memory": "1 gigabyte"}, "memory"),
        ({**ok, "memory": "-1Gi"}, "memory"),
        ({**ok, "memory": 1024}, "memory"),
        ({k: v for k, v in ok.items() if k != "memory"}, "memory"),
        ({**ok, "gpu": -1}, "gpu"),
        ({**ok, "gpu": 0.5}, "gpu"),
        ({**ok, "gpu": True}, "gpu"),
        ({**ok, "gpu": 10**9}, "gpu"),
        ({**ok, "global": "true"}, "global"),
        ({**ok, "global": None}, "global"),
        ({**ok, "node_selector": {"zone": 1}}, "node_selector"),
        ({**ok, "node_selector": ["zone"]}, "node_selector"),
        ({**ok, "node_selector": {"": "x"}}, "node_selector"),
        ({**ok, "tolerations": [{"key": "k", "operator": "Sometimes"}]}, "operator"),
        ({**ok, "tolerations": [{"key": "k", "colour": "red"}]}, "colour"),
        ({**ok, "tolerations": [{"operator": "Exists", "value": "v"}]}, "Exists"),
        ({**ok, "tolerations": [{"key": "k", "tolerationSeconds": 5, "effect": "NoSchedule"}]}, "NoExecute"),
        ({**ok, "tolerations": {"key": "k"}}, "tolerations"),
        ({**ok, "tolerations": ["k"]}, "tolerations"),
        ({**ok, "groups": ["team"]}, "global"),
        ({**ok, "global": False, "groups": ["team", "ghost"]}, "ghost"),
        ({**ok, "is_global": True}, "is_global"),
        ({**ok, "description": "d" * 5000}, "description"),
        ({**ok, "display_name": "a\x00b"}, "display_name"),
    ]
    wrong = {}
    for body, mentioned in bad:
        resp = client.post("/api/v1/instance-types", headers=admin, json=body)
        error = resp.json().get("error", {})
        if resp.status_code != 422 or error.get("code") != "VALIDATION_ERROR" or mentioned not in error["message"]:
            wrong[repr(body)] = (resp.status_code, resp.text)
    assert not wrong
    assert names(client.get("/api/v1/instance-types", headers=admin)) == ["big", "cpu-1", "gpu-1"]

    resp = client.post("/api/v1/instance-types", headers=admin, json={**ok, "name": "cpu-1"})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "CONFLICT"
    for patch in ({"name": "x"}, {"cpu": None}, {"memory": "0"}, {"groups": ["ghost"]}, {"tolerations": None}):
        resp = client.patch("/api/v1/instance-types/gpu-1", headers=admin, json=patch)
        assert resp.status_code == 422 and json_of(resp)["error"]["code"] == "VALIDATION_ERROR", patch
    assert client.patch("/api/v1/instance-types/nope", headers=admin, json={}).status_code == 404
