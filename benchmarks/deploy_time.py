"""Time from `POST /api/v1/deployments` to `Deployed` (and to the first 200 through the gateway).

Starts a real `modeldeck server` (SQLite, local runtime) in a temporary directory, trains a small
scikit-learn model, then creates, waits for and deletes one deployment at a time.

    .venv/bin/python benchmarks/deploy_time.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "models" / "iris").mkdir(parents=True)
        X, y = load_iris(return_X_y=True)
        joblib.dump(LogisticRegression(max_iter=500).fit(X, y), root / "models" / "iris" / "model.joblib")
        port = free_port()
        env = {**os.environ, "MODELDECK_ADMIN_PASSWORD": PASSWORD, "MODELDECK_MODEL_ROOTS": str(root / "models")}
        server = subprocess.Popen(
            [sys.executable, "-m", "modeldeck", "server", "--port", str(port), "--data-dir", str(root / "data")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start")
                time.sleep(0.1)
            http = httpx.Client(base_url=f"{base}/api/v1", timeout=30)
            token = http.post("/auth/login", json={"username": "admin", "password": PASSWORD}).json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            http.post("/groups", json={"name": "bench", "deployments_enabled": True, "members": ["admin"]})
            http.post("/instance-types", json={"name": "small", "cpu": 1, "memory": "1Gi", "global": True})
            to_deployed, to_first_200 = [], []
            for i in range(args.runs):
                t0 = time.perf_counter()
                dep = http.post("/deployments", json={
                    "name": f"iris-{i}", "group": "bench", "instance_type": "small", "replicas": 1,
                    "image": "modeldeck/sklearn-server:latest", "model_uri": f"file://{root}/models/iris",
                }).json()
                deployed = None
                while time.perf_counter() - t0 < 60:
                    d = http.get(f"/deployments/{dep['id']}").json()
                    if d["status"] == "Deployed" and deployed is None:
                        deployed = time.perf_counter() - t0
                    if deployed is not None:
                        r = httpx.post(dep["endpoint"], json={"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}})
                        if r.status_code == 200:
                            to_first_200.append(time.perf_counter() - t0)
                            break
                    time.sleep(0.02)
                if deployed is None:
                    raise SystemExit(f"run {i}: not Deployed within 60 s: {d['status']} {d['message']}")
                to_deployed.append(deployed)
                http.delete(f"/deployments/{dep['id']}")
                time.sleep(0.5)
        finally:
            server.terminate()
            server.wait(30)

    def row(name: str, values: list[float]) -> str:
        return (f"| {name} | {statistics.median(values):.2f} s | {min(values):.2f} s | {max(values):.2f} s |")

    print(f"\n{args.runs} runs, small scikit-learn model, local runtime, SQLite\n")
    print("| measurement | median | min | max |\n|---|---|---|---|")
    print(row("create → Deployed", to_deployed))
    print(row("create → first 200 through the gateway", to_first_200))
    return 0


if __name__ == "__main__":
    sys.exit(main())
