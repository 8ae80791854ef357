"""Deployments API benchmark: list latency with 1,000 deployments and create throughput.

    .venv/bin/python benchmarks/api.py [--deployments 1000] [--requests 200] [--creates 200]

Starts the real server (uvicorn in a subprocess, SQLite in a temp dir, fake runtime, controller
off), seeds the table directly, then measures over HTTP with httpx. The floor is a plain Starlette
endpoint (uvicorn, same machine) answering the same 50-item JSON from memory.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx

ADMIN_PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- server processes ---------------------------------------------------------------------------


def serve_modeldeck(data_dir: str, port: int) -> None:
    import uvicorn

    from modeldeck.app import create_app
    from modeldeck.settings import Settings

    settings = Settings(
        data_dir=Path(data_dir), port=port, runtime="fake", controller_enabled=False, admin_password=ADMIN_PASSWORD
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


def serve_floor(payload_file: str, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    payload = json.loads(Path(payload_file).read_text())

    async def page(_request: Request) -> JSONResponse:
        return JSONResponse(payload)

    uvicorn.run(Starlette(routes=[Route("/list", page)]), host="127.0.0.1", port=port, log_level="warning")


def spawn(mode: str, arg: str, port: int, probe: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, __file__, f"--serve-{mode}", arg, str(port)], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{mode} server did not start")


# -- data ---------------------------------------------------------------------------------------


def seed(data_dir: str, count: int) -> tuple[dict[str, str], dict[str, str]]:
    """Groups, an instance type, an admin and a member token, and ``count`` deployments with a version."""
    from modeldeck.auth.security import hash_token, new_token
    from modeldeck.auth.tables import ApiToken, User
    from modeldeck.db import Database, utcnow
    from modeldeck.deployments.tables import Deployment, DeploymentVersion
    from modeldeck.groups.tables import Group
    from modeldeck.instance_types.tables import InstanceType

    db = Database(f"sqlite:///{Path(data_dir).resolve() / 'modeldeck.db'}")
    headers = []
    with db.write() as session:
        groups = [Group(name=f"group-{i}", deployments_enabled=True) for i in range(4)]
        bench = Group(name="bench", deployments_enabled=True)
        session.add_all([*groups, bench])
        session.add(InstanceType(name="cpu-1", cpu=1, memory=2**30, is_global=True))
        for username, role, member_of in (("bench-admin", "admin", []), ("bench-user", "user", [groups[0], bench])):
            user = User(username=username, password_hash="!", role=role, groups=member_of)
            session.add(user)
            session.flush()
            token = new_token("mdk")
            session.add(ApiToken(id=secrets.token_hex(8), user_id=user.id, name="bench", token_hash=hash_token(token)))
            headers.append({"Authorization": f"Bearer {token}"})
        session.flush()
        start = utcnow() - timedelta(days=1)
        for i in range(count):
            when = start + timedelta(seconds=i)
            dep = Deployment(
                id=f"model-{i:05d}", name=f"Model {i}", group_id=groups[i % len(groups)].id,
                instance_type="cpu-1", replicas=1 + i % 3, image="modeldeck/sklearn-server:1",
                model_uri=f"gs://bucket/models/{i}", description=f"model number {i}",
                metadata_={"team": "bench", "n": str(i)}, env={"LOG_LEVEL": "info"},
                created_by="bench-admin", updated_by="bench-user" if i % 2 else "bench-admin",
                created_at=when, updated_at=when, status="Deployed", reason="Ready",
                message="Deployment is deployed and available now", observed_generation=1,
                available_replicas=1 + i % 3, replicas_status=[], status_changed_at=when,
            )
            session.add(dep)
            session.add(DeploymentVersion(deployment_id=dep.id, version=1, action="create", message="bench",
                                          spec={}, created_by="bench-admin", created_at=when))
    db.dispose()
    return headers[0], headers[1]


# -- measurements -------------------------------------------------------------------------------


def latencies(url: str, headers: dict[str, str], n: int) -> tuple[float, float, int]:
    """p50, p95 in ms over ``n`` sequential GETs (after a warm-up), and the response size."""
    with httpx.Client(headers=headers, timeout=30) as http:
        for _ in range(max(5, n // 10)):
            http.get(url).raise_for_status()
        times = []
        size = 0
        for _ in range(n):
            t0 = time.perf_counter()
            resp = http.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            resp.raise_for_status()
            size = len(resp.content)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], size


def create_rate(base: str, headers: dict[str, str], total: int, workers: int) -> float:
    """Creates per second with ``workers`` clients each creating total/workers deployments."""
    per_worker = total // workers
    errors: list[str] = []

    def work(w: int) -> None:
        with httpx.Client(headers=headers, timeout=60) as http:
            for i in range(per_worker):
                body = {"name": f"bench {workers} {w} {i}", "group": "bench", "instance_type": "cpu-1",
                        "image": "modeldeck/sklearn-server:1", "model_uri": "gs://bucket/m"}
                resp = http.post(f"{base}/api/v1/deployments", json=body)
                if resp.status_code != 201:
                    errors.append(resp.text)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")
    return per_worker * workers / elapsed


def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
        port = free_port()
        server = spawn("modeldeck", tmp, port, "/healthz")
        base = f"http://127.0.0.1:{port}"
        try:
            admin, member = seed(tmp, args.deployments)
            lists = f"{base}/api/v1/deployments"
            cases: list[tuple[str, str, dict[str, str]]] = [
                ("GET list, admin, default page (50)", lists, admin),
                ("GET list, member of 2 groups, default page (50)", lists, member),
                ("GET list, admin, limit=500", f"{lists}?limit=500", admin),
                ("GET list, admin, q=model-009 (search)", f"{lists}?q=model-009", admin),
                ("GET one deployment", f"{lists}/model-00042", admin),
            ]
            for label, url, headers in cases:
                p50, p95, size = latencies(url, headers, args.requests)
                rows.append((label, f"p50 {p50:.1f} ms, p95 {p95:.1f} ms ({size // 1024} KiB)"))
            payload = httpx.get(lists, headers=admin).json()
            payload_file = Path(tmp) / "page.json"
            payload_file.write_text(json.dumps(payload))
            for workers, label in ((1, "POST create, 1 client (sequential)"), (4, "POST create, 4 concurrent clients")):
                rows.append((label, f"{create_rate(base, member, args.creates, workers):.0f} creates/s"))
        finally:
            server.terminate()
            server.wait(timeout=30)
        floor_port = free_port()
        floor = spawn("floor", str(payload_file), floor_port, "/list")
        try:
            p50, p95, size = latencies(f"http://127.0.0.1:{floor_port}/list", {}, args.requests)
            rows.append(("floor: plain Starlette, same 50-item JSON from memory",
                         f"p50 {p50:.1f} ms, p95 {p95:.1f} ms ({size // 1024} KiB)"))
        finally:
            floor.terminate()
            floor.wait(timeout=30)
    return rows


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1].startswith("--serve-"):
        {"--serve-modeldeck": serve_modeldeck, "--serve-floor": serve_floor}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200, help="GETs per latency measurement")
    parser.add_argument("--creates", type=int, default=200, help="deployments created per throughput run")
    args = parser.parse_args()
    rows = run(args)
    print(f"\nmodeldeck API, SQLite, {args.deployments} deployments, {args.requests} requests per row, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    print("| measurement | result |\n|---|---|")
    for label, result in rows:
        print(f"| {label} | {result} |")


if __name__ == "__main__":
    main()
