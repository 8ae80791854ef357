"""Quota admission through the API: counted deployments, resources, disabled groups."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from api.factories import World, body, make_instance_type, set_group
from modeldeck.settings import Settings

API = "/api/v1/deployments"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, controller_enabled=False)


@pytest.fixture
def world(client: TestClient) -> World:
    return World(client)


def refused(resp: object, code: str = "QUOTA_EXCEEDED") -> bool:
    return resp.status_code == 409 and resp.json()["error"]["code"] == code  # type: ignore[attr-defined]


def test_max_deployments_counts_running_only(client: TestClient, world: World) -> None:
    set_group(world.db, "team", max_deployments=2)
    a = world.create(id="dep-a")
    world.create(id="dep-b")
    resp = client.post(API, json=body(id="dep-c"), headers=world.alice)
    assert refused(resp) and "2" in resp.json()["error"]["message"]
    assert client.get(f"{API}/dep-c", headers=world.alice).status_code == 404
    # At exactly the maximum an update still passes: the deployment itself is not counted twice.
    assert client.patch(f"{API}/dep-a", json={"replicas": 2}, headers=world.alice).status_code == 200
    # Stopped deployments do not count; starting one again is checked.
    assert client.post(f"{API}/dep-a/stop", headers=world.alice).status_code == 200
    world.create(id="dep-c")
    assert refused(client.post(f"{API}/dep-a/start", headers=world.alice))
    assert client.get(f"{API}/dep-a", headers=world.alice).json()["stopped"] is True
    # Updating a stopped deployment is never quota-checked and keeps it stopped.
    resp = client.patch(f"{API}/dep-a", json={"replicas": 3}, headers=world.alice)
    assert resp.status_code == 200 and resp.json()["stopped"] is True
    # Other groups are not affected.
    world.create(world.bob, id="dep-other", group="other")
    assert a["group"] == "team"


def test_stop_is_never_refused(client: TestClient, world: World) -> None:
    for i in range(3):
        world.create(id=f"dep-{i}")
    set_group(world.db, "team", max_deployments=1, quota_cpu=0.5, deployments_enabled=False)
    for i in range(3):
        assert client.post(f"{API}/dep-{i}/stop", headers=world.alice).status_code == 200


def test_disabled_group_refuses_create_start_and_running_updates(client: TestClient, world: World) -> None:
    world.create(id="running")
    world.create(id="stopped")
    client.post(f"{API}/stopped/stop", headers=world.alice)
    set_group(world.db, "team", deployments_enabled=False)
    assert refused(client.post(API, json=body(), headers=world.alice), "GROUP_DISABLED")
    assert refused(client.post(f"{API}/stopped/start", headers=world.alice), "GROUP_DISABLED")
    assert refused(client.patch(f"{API}/running", json={"replicas": 2}, headers=world.alice), "GROUP_DISABLED")
    assert client.patch(f"{API}/stopped", json={"replicas": 2}, headers=world.alice).status_code == 200
    assert client.delete(f"{API}/running", headers=world.alice).status_code == 204


def test_resource_quota_is_replicas_times_instance_type(client: TestClient, world: World) -> None:
    make_instance_type(world.db, "cpu-2", cpu=2, memory="4Gi")
    make_instance_type(world.db, "gpu-1", cpu=1, memory="2Gi", gpu=1)
    set_group(world.db, "team", quota_cpu=5.0, quota_memory=8 * 2**30, quota_gpu=1)
    world.create(id="big", instance_type="cpu-2", replicas=2)  # 4 cores, 8Gi
    resp = client.post(API, json=body(instance_type="cpu-2"), headers=world.alice)
    assert refused(resp) and "cpu" in resp.json()["error"]["message"]
    resp = client.post(API, json=body(instance_type="cpu-1"), headers=world.alice)  # 1 core but +1Gi
    assert refused(resp) and "memory" in resp.json()["error"]["message"]
    # Scaling down frees room; scaling back up over the quota is refused (itself excluded, not free).
    assert client.patch(f"{API}/big", json={"replicas": 1}, headers=world.alice).status_code == 200
    world.create(id="small", instance_type="gpu-1")  # 3 cores, 6Gi, 1 gpu
    assert refused(client.patch(f"{API}/big", json={"replicas": 2}, headers=world.alice))
    assert refused(client.post(API, json=body(instance_type="gpu-1"), headers=world.alice))
    # Rollback to the two-replica version is re-checked too.
    assert refused(client.post(f"{API}/big/rollback", json={"version": 1}, headers=world.alice))
    client.post(f"{API}/small/stop", headers=world.alice)
    resp = client.post(f"{API}/big/rollback", json={"version": 1}, headers=world.alice)
    assert resp.status_code == 200 and resp.json()["replicas"] == 2
    assert refused(client.post(f"{API}/small/start", headers=world.alice))


def test_quota_message_names_the_group(client: TestClient, world: World) -> None:
    set_group(world.db, "team", max_deployments=0)
    resp = client.post(API, json=body(), headers=world.alice)
    assert refused(resp) and "team" in resp.json()["error"]["message"]
