"""Zero-downtime rollouts and crash recovery, with real replicas and a real server process."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import httpx
import pytest
from e2e_support import Server, create, replica_processes, setup_group, wait_for

pytestmark = pytest.mark.slow


class Load:
    """N clients posting predictions in a loop; counts every answer that is not a 200."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url, self.ok, self.failed = url, 0, []  # type: ignore[var-annotated]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        self._lock = threading.Lock()

    def _run(self) -> None:
        body = {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                try:
                    resp = http.post(self.url, json=body)
                    outcome = resp.status_code
                except httpx.HTTPError as exc:
                    outcome = repr(exc)
                with self._lock:
                    if outcome == 200:
                        self.ok += 1
                    else:
                        self.failed.append(outcome)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def test_rolling_update_and_rollback_under_load(server: Server) -> None:
    setup_group(server)
    dep = create(server)
    server.wait_status(dep["id"], "Deployed")
    with Load(dep["endpoint"]) as load:
        time.sleep(1)
        resp = server.api("PATCH", f"/deployments/{dep['id']}",
                          json={"replicas": 2, "env": {"MODEL_VARIANT": "b"}, "update_message": "scale out"})
        assert resp.status_code == 200, resp.text
        updated = server.wait_status(dep["id"], "Deployed")
        assert updated["available_replicas"] == 2
        time.sleep(1)
        resp = server.api("POST", f"/deployments/{dep['id']}/rollback", json={"version": 1})
        assert resp.status_code == 200, resp.text
        rolled = server.wait_status(dep["id"], "Deployed")
        assert rolled["replicas"] == 1 and rolled["env"] == {}
        time.sleep(1)
    assert load.failed == [], f"{len(load.failed)} failed requests during rollout: {load.failed[:5]}"
    assert load.ok > 50


def test_kill_replica_restarts(server: Server) -> None:
    setup_group(server)
    dep = create(server)
    server.wait_status(dep["id"], "Deployed")
    (proc,) = replica_processes(server.data_dir)
    proc.send_signal(signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        d = server.deployment(dep["id"])
        ok = d["status"] == "Deployed" and d["replicas_status"] and d["replicas_status"][0]["restarts"] >= 1
        return d if ok else None

    wait_for(restarted, 60, 0.2, "replica restarted and Deployed")
    assert httpx.post(dep["endpoint"], json={"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}).status_code == 200


def test_server_kill_during_rollout_converges(server: Server) -> None:
    setup_group(server)
    dep = create(server, replicas=2)
    server.wait_status(dep["id"], "Deployed")
    resp = server.api("PATCH", f"/deployments/{dep['id']}", json={"env": {"MODEL_VARIANT": "c"}})
    assert resp.status_code == 200, resp.text
    wait_for(lambda: len(replica_processes(server.data_dir)) > 2, 30, 0.05, "a new replica started")
    server.stop(signal.SIGKILL)
    server.start()
    final = server.wait_status(dep["id"], "Deployed", timeout=90)
    assert final["generation"] == resp.json()["generation"]
    assert final["env"] == {"MODEL_VARIANT": "c"}
    history = server.api("GET", f"/deployments/{dep['id']}/history").json()
    assert [h["version"] for h in history] == [2, 1]

    def converged() -> bool:
        procs = replica_processes(server.data_dir)
        return len(procs) == 2 and all(p.environ().get("MODEL_VARIANT") == "c" for p in procs)

    wait_for(converged, 60, 0.2, "exactly the two new replicas")
