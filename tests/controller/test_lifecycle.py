"""API → controller loop → status, end to end: the real app, the real database, the fake runtime."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from ctl_support import wait_for
from fastapi.testclient import TestClient

from api.factories import World, body
from modeldeck.app import create_app
from modeldeck.controller.loop import ControllerLoop
from modeldeck.controller.state import Decision
from modeldeck.runtimes.base import Replica, ReplicaSpec
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings

API = "/api/v1/deployments"


@pytest.fixture
def world(client: TestClient) -> World:
    return World(client)


class Routes:
    """What a gateway would keep: per deployment, the ready replicas of the last publish."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: dict[str, list[list[str]]] = {}
        self.removed: list[str] = []

    def __call__(self, deployment_id: str, decision: Decision | None, replicas: list[Replica]) -> None:
        with self.lock:
            if decision is None:
                self.removed.append(deployment_id)
            self.ready.setdefault(deployment_id, []).append(sorted(r.name for r in replicas if r.ready))


@pytest.fixture
def routes(client: TestClient) -> Routes:
    routes = Routes()
    controller: ControllerLoop = client.app.state.controller  # type: ignore[attr-defined]
    controller.on_change.append(routes)
    return routes


def get(client: TestClient, world: World, deployment_id: str) -> dict[str, Any]:
    resp = client.get(f"{API}/{deployment_id}", headers=world.alice)
    assert resp.status_code == 200, resp.text
    dep: dict[str, Any] = resp.json()
    return dep


def wait_status(
    client: TestClient, world: World, deployment_id: str, status: str, timeout: float = 5.0
) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        dep = get(client, world, deployment_id)
        done = dep["status"] == status and dep["observed_generation"] == dep["generation"]
        return dep if done else None

    found: dict[str, Any] = wait_for(settled, timeout)
    return found


def post(client: TestClient, world: World, path: str, json: Any = None) -> dict[str, Any]:
    resp = client.post(f"{API}/{path}", json=json, headers=world.alice)
    assert resp.status_code in (200, 201), resp.text
    out: dict[str, Any] = resp.json()
    return out


def patch(client: TestClient, world: World, deployment_id: str, **changes: Any) -> dict[str, Any]:
    resp = client.patch(f"{API}/{deployment_id}", json=changes, headers=world.alice)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def names(fake: FakeRuntime, deployment_id: str) -> list[str]:
    return [r.name for r in fake.observe(deployment_id)]


def test_create_deployed_crash_failed_recover_stop_start_delete(
    client: TestClient, world: World, fake_runtime: FakeRuntime, routes: Routes
) -> None:
    fake_runtime.set_ready(False)
    dep = post(client, world, "", body(replicas=2))
    dep_id = dep["id"]
    assert dep["status"] == "Deploying"
    deploying = wait_for(lambda: (d := get(client, world, dep_id))["replicas_status"] and d)
    assert deploying["status"] == "Deploying" and deploying["observed_generation"] == 1
    assert deploying["message"] == "0/2 replicas ready; rolling out generation 1"
    assert {r["state"] for r in deploying["replicas_status"]} == {"starting"}

    fake_runtime.set_ready(True)
    deployed = wait_status(client, world, dep_id, "Deployed")
    assert (deployed["reason"], deployed["message"], deployed["available_replicas"]) == (
        "Available", "2/2 replicas ready", 2)
    assert wait_for(lambda: routes.ready[dep_id][-1] == [f"{dep_id}-g1-r0", f"{dep_id}-g1-r1"])

    fake_runtime.crash(dep_id, reason="ModelLoadFailed", message="Traceback (most recent call last):\nEOFError")
    failed = wait_status(client, world, dep_id, "Failed")
    assert failed["reason"] == "ModelLoadFailed" and "EOFError" in failed["message"]
    assert failed["available_replicas"] == 0
    fake_runtime.recover(dep_id)
    wait_status(client, world, dep_id, "Deployed")

    fake_runtime.hold_termination(True)
    stopping = post(client, world, f"{dep_id}/stop")
    assert stopping["status"] == "Stopping"
    stopping = wait_status(client, world, dep_id, "Stopping")
    assert stopping["message"] == "draining 2 replicas"
    assert wait_for(lambda: routes.ready[dep_id][-1] == [])  # the gateway lets go before the drain
    fake_runtime.finish_termination(dep_id)
    stopped = wait_status(client, world, dep_id, "Stopped")
    assert stopped["replicas_status"] == [] and names(fake_runtime, dep_id) == []
    fake_runtime.hold_termination(False)

    started = post(client, world, f"{dep_id}/start")
    gen = started["generation"]
    wait_status(client, world, dep_id, "Deployed")
    assert names(fake_runtime, dep_id) == [f"{dep_id}-g{gen}-r0", f"{dep_id}-g{gen}-r1"]

    assert client.delete(f"{API}/{dep_id}", headers=world.alice).status_code == 204
    wait_for(lambda: not fake_runtime.observe(dep_id) and dep_id in routes.removed)
    assert fake_runtime.read_logs(dep_id) == ""


def test_rolling_update_never_leaves_zero_ready_and_scaling_restarts_nothing(
    client: TestClient, world: World, fake_runtime: FakeRuntime, routes: Routes
) -> None:
    dep_id = post(client, world, "", body(replicas=2))["id"]
    wait_status(client, world, dep_id, "Deployed")
    first = names(fake_runtime, dep_id)

    patch(client, world, dep_id, replicas=3, description="more traffic")
    scaled = wait_status(client, world, dep_id, "Deployed")
    assert scaled["available_replicas"] == 3
    assert names(fake_runtime, dep_id)[:2] == first and fake_runtime.stopped == []

    fake_runtime.set_ready(False, dep_id)
    before_rollout = len(routes.ready[dep_id])
    gen = patch(client, world, dep_id, image="modeldeck/sklearn-server:2")["generation"]
    new = [f"{dep_id}-g{gen}-r{i}" for i in range(3)]
    rolling = wait_for(lambda: (d := get(client, world, dep_id))["observed_generation"] == gen and d)
    assert rolling["status"] == "Deploying" and rolling["available_replicas"] == 3
    assert "previous version serving on 3 replicas" in rolling["message"]
    wait_for(lambda: set(new) <= set(names(fake_runtime, dep_id)))
    for name in new:
        fake_runtime.mark_ready(name)

        def routed(n: str = name) -> bool:
            return len(routes.ready[dep_id][-1]) == 3 and n in routes.ready[dep_id][-1]

        wait_for(routed)
    wait_status(client, world, dep_id, "Deployed")
    wait_for(lambda: [r["name"] for r in get(client, world, dep_id)["replicas_status"]] == new)
    assert all(fake_runtime.spec_of(n).image == "modeldeck/sklearn-server:2" for n in new)
    served = routes.ready[dep_id]
    first_served = next(i for i, ready in enumerate(served) if ready)
    assert all(len(ready) >= 2 for ready in served[first_served:])  # never 0 once it served
    assert all(len(ready) == 3 for ready in served[before_rollout:])  # surge: always 3 during the rollout
    assert served[-1] == new


def test_failing_rollout_keeps_previous_version_serving_then_rollback(
    client: TestClient, world: World, fake_runtime: FakeRuntime, routes: Routes
) -> None:
    dep = post(client, world, "", body())
    dep_id = dep["id"]
    wait_status(client, world, dep_id, "Deployed")
    old = names(fake_runtime, dep_id)

    fake_runtime.set_ready(False, dep_id)
    gen = patch(client, world, dep_id, model_uri="gs://bucket/broken")["generation"]
    wait_for(lambda: f"{dep_id}-g{gen}-r0" in names(fake_runtime, dep_id))
    fake_runtime.crash(dep_id, replica=f"{dep_id}-g{gen}-r0", reason="ModelLoadFailed",
                       message="ValueError: unsupported pickle protocol")
    failed = wait_status(client, world, dep_id, "Failed")
    assert failed["reason"] == "ModelLoadFailed"
    assert "previous version still serving on 1 replica" in failed["message"]
    assert "unsupported pickle protocol" in failed["message"]
    assert failed["available_replicas"] == 1
    assert routes.ready[dep_id][-1] == old

    fake_runtime.set_ready(True, dep_id)
    post(client, world, f"{dep_id}/rollback", {"version": dep["version"]})
    back = wait_status(client, world, dep_id, "Deployed")
    assert back["model_uri"] == dep["model_uri"]
    assert names(fake_runtime, dep_id) == old  # same template as the running replica: kept, not restarted
    assert f"{dep_id}-g{gen}-r0" in fake_runtime.stopped


def test_config_error_reaches_failed_and_clears(
    client: TestClient, world: World, fake_runtime: FakeRuntime
) -> None:
    from api.factories import set_group

    dep_id = post(client, world, "", body())["id"]
    wait_status(client, world, dep_id, "Deployed")
    set_group(world.db, "team", deployments_enabled=False)
    client.app.state.platform.wake(dep_id)  # type: ignore[attr-defined]  # as the groups API will
    failed = wait_status(client, world, dep_id, "Failed")
    assert failed["reason"] == "GroupDisabled"
    assert names(fake_runtime, dep_id) == []
    set_group(world.db, "team", deployments_enabled=True)
    client.app.state.platform.wake(dep_id)  # type: ignore[attr-defined]
    wait_status(client, world, dep_id, "Deployed")


@pytest.fixture
def slow_resync_client(settings: Settings, fake_runtime: FakeRuntime) -> Iterator[TestClient]:
    app = create_app(replace(settings, resync_interval_s=60.0), runtime=fake_runtime)
    with TestClient(app) as c:
        yield c


def test_wake_drives_create_to_deployed_fast(slow_resync_client: TestClient) -> None:
    """With the resync 60 s away, only wake() and the fast re-check can bring it to Deployed."""
    client = slow_resync_client
    world = World(client)
    times = []
    for i in range(5):
        t0 = time.monotonic()
        dep_id = post(client, world, "", body(name=f"fast {i}"))["id"]
        wait_status(client, world, dep_id, "Deployed", timeout=3.0)
        times.append(time.monotonic() - t0)
    print("create -> Deployed (s):", [round(t, 3) for t in times])
    assert sorted(times)[2] < 1.0, times


def test_restart_brings_deployments_back_and_removes_orphans(settings: Settings, fake_runtime: FakeRuntime) -> None:
    """Startup recovery: a new server (resync 60 s away, no wake) reconciles every deployment at once."""
    with TestClient(create_app(settings, runtime=fake_runtime)) as client:
        world = World(client)
        running = post(client, world, "", body(name="running", replicas=2))["id"]
        parked = post(client, world, "", body(name="parked"))["id"]
        post(client, world, f"{parked}/stop")
        wait_status(client, world, running, "Deployed")
        wait_status(client, world, parked, "Stopped")
    assert fake_runtime.closed and fake_runtime.observe(running) == []  # shutdown leaves no orphans
    ghost = ReplicaSpec("ghost-abcde", 3, 0, "modeldeck/sklearn-server:1", None, {}, 1.0, 2**30, 0)
    fake_runtime.start_replica(ghost)  # a deployment deleted while the server was down

    with TestClient(create_app(replace(settings, resync_interval_s=60.0), runtime=fake_runtime)) as client:
        wait_for(lambda: len(fake_runtime.observe(running)) == 2)
        wait_for(lambda: [r["ready"] for r in get(client, world, running)["replicas_status"]] == [True, True])
        back = wait_status(client, world, running, "Deployed")
        assert back["available_replicas"] == 2
        assert get(client, world, parked)["status"] == "Stopped" and fake_runtime.observe(parked) == []
        wait_for(lambda: fake_runtime.observe("ghost-abcde") == [])
        wait_for(lambda: fake_runtime.read_logs("ghost-abcde") == "")
