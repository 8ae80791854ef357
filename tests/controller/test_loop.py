"""The loop: errors back off without killing it; a deployment is never reconciled concurrently with itself."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from ctl_support import wait_for
from fastapi.testclient import TestClient

from api.factories import World, body
from modeldeck.app import create_app
from modeldeck.runtimes.base import Replica, ReplicaUsage
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings


class SlowFlakyRuntime(FakeRuntime):
    """A fake whose observe is slow (a busy runtime API) and fails for 'poisoned' deployments."""

    def __init__(self) -> None:
        super().__init__()
        self.poisoned: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.max_parallel: Counter[str] = Counter()
        self._active: Counter[str] = Counter()
        self._guard = threading.Lock()

    def observe(self, deployment_id: str) -> list[Replica]:
        with self._guard:
            self.calls[deployment_id] += 1
            self._active[deployment_id] += 1
            self.max_parallel[deployment_id] = max(self.max_parallel[deployment_id], self._active[deployment_id])
        try:
            time.sleep(0.01)
            if deployment_id in self.poisoned:
                raise ConnectionError("runtime API unreachable")
            return super().observe(deployment_id)
        finally:
            with self._guard:
                self._active[deployment_id] -= 1

    def usage(self, deployment_id: str) -> list[ReplicaUsage]:  # the metrics sampler's calls are not counted
        return [ReplicaUsage(name=r.name, cpu=0.0, memory=0) for r in FakeRuntime.observe(self, deployment_id)]


@pytest.fixture
def runtime() -> SlowFlakyRuntime:
    return SlowFlakyRuntime()


@pytest.fixture
def app_client(settings: Settings, runtime: SlowFlakyRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(settings, runtime=runtime)) as client:
        yield client


def status_of(client: TestClient, world: World, deployment_id: str) -> str:
    value: str = client.get(f"/api/v1/deployments/{deployment_id}", headers=world.alice).json()["status"]
    return value


def test_errors_back_off_per_deployment_and_never_stop_the_loop(
    app_client: TestClient, runtime: SlowFlakyRuntime
) -> None:
    world = World(app_client)
    bad = app_client.post("/api/v1/deployments", json=body(name="bad", id="bad-one"), headers=world.alice)
    assert bad.status_code == 201
    runtime.poisoned.add("bad-one")
    good = app_client.post("/api/v1/deployments", json=body(name="good"), headers=world.alice).json()["id"]
    wait_for(lambda: status_of(app_client, world, good) == "Deployed")

    runtime.calls["bad-one"] = 0
    t0 = time.monotonic()
    wait_for(lambda: time.monotonic() - t0 > 2.0 and runtime.calls["bad-one"] >= 2, timeout=10)
    # resync every 0.2 s and wakes would give ~10 tries in 2 s; the backoff (0.5, 1, 2 s ...) allows ~4
    assert runtime.calls["bad-one"] <= 5, runtime.calls["bad-one"]

    runtime.poisoned.clear()
    wait_for(lambda: status_of(app_client, world, "bad-one") == "Deployed", timeout=15)


def test_one_deployment_is_never_reconciled_concurrently(app_client: TestClient, runtime: SlowFlakyRuntime) -> None:
    world = World(app_client)
    dep_id = app_client.post("/api/v1/deployments", json=body(), headers=world.alice).json()["id"]
    controller = app_client.app.state.controller  # type: ignore[attr-defined]

    def spam() -> None:
        for _ in range(50):
            controller.wake(dep_id)

    threads = [threading.Thread(target=spam) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: runtime.calls[dep_id] >= 5)
    assert runtime.max_parallel[dep_id] == 1
    wait_for(lambda: status_of(app_client, world, dep_id) == "Deployed")
