"""A real platform: `modeldeck server` as a subprocess on SQLite, real replicas, real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import psutil
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

ADMIN_PASSWORD = "e2e-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last={last!r}")


@dataclass
class Server:
    data_dir: Path
    model_root: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.data_dir.parent / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modeldeck", "server", "--port", str(self.port),
             "--data-dir", str(self.data_dir)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(self._healthy, 30, what="server /healthz")
        if not self.headers:
            token = httpx.post(f"{self.url}/api/v1/auth/login",
                               json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
            self.headers = {"Authorization": f"Bearer {token}"}

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self) -> str:
        path = self.data_dir.parent / "server.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=self.headers, timeout=30, **kwargs)

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        resp = self.api("GET", f"/deployments/{deployment_id}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def wait_status(self, deployment_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            dep = self.deployment(deployment_id)
            ok = dep["status"] == status and dep["observed_generation"] >= dep["generation"]
            return dep if ok else None

        try:
            return dict(wait_for(settled, timeout, 0.1, f"{deployment_id} {status}"))
        except AssertionError as exc:
            now = self.deployment(deployment_id)
            raise AssertionError(f"{exc}\nnow: {now}\nserver log:\n{self.log_tail()}") from None


def replica_processes(data_dir: Path) -> list[psutil.Process]:
    """Every live model-server process started for this data dir."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "modeldeck.serving" in cmdline and str(data_dir) in cmdline + str(proc.cwd()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression, np.ndarray]:
    root = tmp_path_factory.mktemp("models")
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    (root / "iris").mkdir()
    joblib.dump(model, root / "iris" / "model.joblib")
    return root, model, X


@pytest.fixture
def server(tmp_path: Path, iris_model: tuple[Path, Any, Any]) -> Iterator[Server]:
    root = iris_model[0]
    env = {
        **os.environ,
        "MODELDECK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MODELDECK_MODEL_ROOTS": str(root),
        "MODELDECK_RESYNC_INTERVAL_S": "0.5",
        "MODELDECK_DRAIN_GRACE_S": "5",
        "MODELDECK_READINESS_TIMEOUT_S": "60",
        # An administrator-mapped image whose command does not exist on this machine.
        "MODELDECK_IMAGE_COMMANDS": '{"acme/broken-server": ["/nonexistent/acme-serve", "--port", "{port}"]}',
    }
    env.pop("MODELDECK_DATABASE_URL", None)
    srv = Server(data_dir=tmp_path / "data", model_root=root, port=free_port(), env=env)
    srv.data_dir.mkdir()
    srv.start()
    yield srv
    srv.stop()
    leftovers = replica_processes(srv.data_dir)
    for proc in leftovers:
        proc.kill()
    assert not leftovers, f"orphan replica processes after server stop: {[p.pid for p in leftovers]}"


def setup_group(server: Server, *, max_deployments: int | None = None) -> None:
    """An enabled group 'team' with the admin as member and a small global instance type."""
    resp = server.api("POST", "/groups", json={
        "name": "team", "deployments_enabled": True, "max_deployments": max_deployments, "members": ["admin"],
    })
    assert resp.status_code == 201, resp.text
    resp = server.api("POST", "/instance-types", json={
        "name": "small", "cpu": 0.5, "memory": "1Gi", "gpu": 0, "global": True,
    })
    assert resp.status_code == 201, resp.text


def create(server: Server, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "iris", "group": "team", "instance_type": "small", "replicas": 1,
        "image": "modeldeck/sklearn-server:latest", "model_uri": f"file://{server.model_root}/iris",
        **overrides,
    }
    resp = server.api("POST", "/deployments", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())
