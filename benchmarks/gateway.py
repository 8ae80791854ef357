"""Gateway overhead: the same requests sent directly to an upstream, through the modeldeck gateway, and
through nginx (one worker) proxying to that upstream, in one run.

    sudo apt-get install -y nginx wrk      # done by this script when missing (needs root)
    .venv/bin/python benchmarks/gateway.py [--duration 10] [--rounds 3] [--variants app,middleware,plain]

The upstream is nginx answering a fixed JSON body (faster than either proxy, so the proxy is what is
measured). Each proxy runs pinned to core 0; wrk and the upstream share core 1. CPU time per request
comes from each proxy's own process accounting (/proc/<pid>/stat utime+stime of the proxy's processes,
divided by the requests wrk completed), which stays meaningful on a busy machine where requests/s and
latency do not. Latency percentiles are wrk's. Results: medians over the rounds.

Gateway variants (default: app; list several to compare them in the same run):
  app         create_app() served as `modeldeck server` serves it (same uvicorn options): /deployment/...
              is answered by the gateway before FastAPI's middleware and routing. Private endpoint: the
              client's Bearer token is checked and the request is counted in the metrics, as for users.
  middleware  the same app with the gateway as an ASGI middleware (app.add_middleware) instead
  mount       the same app with the gateway mounted: app.mount("/deployment", gateway)
  bare        the gateway ASGI app alone on uvicorn, no FastAPI
  plain       like app, but uvicorn's stock HTTP protocol (no write coalescing)
  uvicorn     no proxying at all: a raw ASGI app answering the fixed body on uvicorn (the server's floor)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BODY = '{"data":{"ndarray":[[5.1,3.5,1.4,0.2]]}}'
ANSWER = '{"data":{"names":["t:0","t:1","t:2"],"ndarray":[[0.97,0.02,0.01]]}}'
TOKEN = "mdc_benchmark-client-token"
DEPLOYMENT = "bench-abcde"
PREDICT = "/api/v1.0/predictions"
PROXY_CORE, LOAD_CORE = "0", "1"

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"non2xx":%%d,"socket_errors":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""

NGINX_UPSTREAM = """
worker_processes 1;
daemon off;
pid %(dir)s/upstream.pid;
error_log %(dir)s/upstream-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path %(dir)s/ub; proxy_temp_path %(dir)s/up; fastcgi_temp_path %(dir)s/uf;
  uwsgi_temp_path %(dir)s/uu; scgi_temp_path %(dir)s/us;
  server {
    listen 127.0.0.1:%(port)d;
    location / { default_type application/json; return 200 '%(answer)s'; }
  }
}
"""

NGINX_PROXY = """
worker_processes 1;
daemon off;
pid %(dir)s/proxy.pid;
error_log %(dir)s/proxy-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path %(dir)s/pb; proxy_temp_path %(dir)s/pp; fastcgi_temp_path %(dir)s/pf;
  uwsgi_temp_path %(dir)s/pu; scgi_temp_path %(dir)s/ps;
  upstream model { server 127.0.0.1:%(upstream)d; keepalive 64; }
  server {
    listen 127.0.0.1:%(port)d;
    location /deployment/%(deployment)s/ {
      proxy_pass http://model/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_tools() -> None:
    missing = [pkg for pkg, exe in (("nginx", "nginx"), ("wrk", "wrk")) if not shutil.which(exe)
               and not Path(f"/usr/sbin/{exe}").exists()]
    if missing:
        print(f"installing {' '.join(missing)} (apt-get)", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` and its live children (nginx: master and worker)."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime: fields 14, 15
    return user / tick, system / tick


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ValueError):
            continue
    return found


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            req = urllib.request.Request(url, data=BODY.encode(), headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(req, timeout=2) as resp:
                body = resp.read().decode()
                if resp.status == 200 and body == ANSWER:
                    return
                raise RuntimeError(f"{url} answered {resp.status} {body!r}")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Target:
    name: str
    url: str
    pid: int | None  # the process whose CPU time is the proxy's cost


@dataclass
class Cell:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None
    user_us: float | None
    sys_us: float | None


def run_wrk(target: Target, concurrency: int, duration: float, script: Path) -> Cell:
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s",
           "-s", str(script), target.url]
    before = cpu_seconds(target.pid) if target.pid else (0.0, 0.0)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = cpu_seconds(target.pid) if target.pid else (0.0, 0.0)
    user, system = after[0] - before[0], after[1] - before[1]
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    res = json.loads(line.removeprefix("RESULT "))
    if res["non2xx"] or res["socket_errors"]:
        raise RuntimeError(f"{target.name}: {res['non2xx']} non-2xx, {res['socket_errors']} socket errors")
    n = res["requests"]
    return Cell(
        requests=n,
        rps=n / (res["duration_us"] / 1e6),
        p50_ms=res["p50_us"] / 1000,
        p99_ms=res["p99_us"] / 1000,
        cpu_us=(user + system) / n * 1e6 if target.pid else None,
        user_us=user / n * 1e6 if target.pid else None,
        sys_us=system / n * 1e6 if target.pid else None,
    )


def start(cmd: list[str], log: Path, core: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["taskset", "-c", core, *cmd], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this script started (taskset -> server)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def serve_gateway(port: int, upstream: str, variant: str, data_dir: str) -> None:
    """Child mode: the modeldeck gateway on uvicorn, configured as ``modeldeck server`` runs it."""
    import hashlib

    import uvicorn

    from modeldeck.app import create_app
    from modeldeck.gateway.proxy import PREFIX, Gateway
    from modeldeck.gateway.routes import Route, RouteTable
    from modeldeck.gateway.server import SERVER_OPTIONS
    from modeldeck.metrics.store import MetricsStore
    from modeldeck.settings import Settings

    route = Route(DEPLOYMENT, replicas=((f"{DEPLOYMENT}-g1-r0", upstream),), private=True,
                  clients={hashlib.sha256(TOKEN.encode()).hexdigest(): "bench-client"}, desired=1)
    options = dict(SERVER_OPTIONS)
    app: Any
    if variant == "uvicorn":
        app = _fixed_answer
    elif variant == "bare":
        routes = RouteTable()
        routes.update(DEPLOYMENT, route)
        app = Gateway(routes, MetricsStore(), max_body_bytes=32 << 20, upstream_timeout_s=60)
    else:
        settings = Settings(data_dir=Path(data_dir), runtime="fake", controller_enabled=False,
                            admin_password="bench-admin-password")
        app = create_app(settings)
        app.state.platform.routes.update(DEPLOYMENT, route)
        gateway = app.gateway
        if variant == "middleware":
            app.gateway = None

            class GatewayMiddleware:
                def __init__(self, inner: Any) -> None:
                    self.inner = inner

                async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                    if scope["type"] == "http" and scope["path"].startswith(PREFIX):
                        await gateway(scope, receive, send)
                    else:
                        await self.inner(scope, receive, send)

            app.add_middleware(GatewayMiddleware)
        elif variant == "mount":
            app.gateway = None
            app.mount("/deployment", gateway)
        elif variant == "plain":
            del options["http"]
    uvicorn.run(app, host="127.0.0.1", port=port, **options)


async def _fixed_answer(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    body = ANSWER.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--variants", default="app", help="comma list of: app,middleware,mount,bare,plain,uvicorn")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--serve-gateway", nargs=4, metavar=("PORT", "UPSTREAM", "VARIANT", "DATA_DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_gateway:
        port, upstream, variant, data_dir = args.serve_gateway
        serve_gateway(int(port), upstream, variant, data_dir)
        return 0

    ensure_tools()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    variants = args.variants.split(",")
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
        d = Path(tmp)
        up_port, nginx_port = free_port(), free_port()
        (d / "upstream.conf").write_text(NGINX_UPSTREAM % {"dir": d, "port": up_port, "answer": ANSWER})
        (d / "proxy.conf").write_text(NGINX_PROXY % {"dir": d, "port": nginx_port, "upstream": up_port,
                                                     "deployment": DEPLOYMENT})
        (d / "wrk.lua").write_text(WRK_SCRIPT % {"body": BODY, "token": TOKEN})
        try:
            procs.append(start([nginx_binary(), "-p", tmp, "-c", str(d / "upstream.conf")], d / "up.log", LOAD_CORE))
            nginx = start([nginx_binary(), "-p", tmp, "-c", str(d / "proxy.conf")], d / "nginx.log", PROXY_CORE)
            procs.append(nginx)
            targets = [Target("direct", f"http://127.0.0.1:{up_port}{PREDICT}", None)]
            wait_http(targets[0].url)
            targets.append(Target("nginx", f"http://127.0.0.1:{nginx_port}/deployment/{DEPLOYMENT}{PREDICT}",
                                  nginx.pid))
            for variant in variants:
                port = free_port()
                data = d / f"data-{variant}"
                gw = start([sys.executable, __file__, "--serve-gateway", str(port), f"127.0.0.1:{up_port}",
                            variant, str(data)], d / f"gateway-{variant}.log", PROXY_CORE)
                procs.append(gw)
                name = "modeldeck" if variant == "app" else f"modeldeck ({variant})"
                targets.append(Target(name, f"http://127.0.0.1:{port}/deployment/{DEPLOYMENT}{PREDICT}", gw.pid))
            for t in targets:
                wait_http(t.url)
            results: dict[tuple[str, int], list[Cell]] = {}
            for rnd in range(args.rounds):
                for c in concurrencies:
                    for t in targets:
                        if args.warmup:
                            run_wrk(t, c, args.warmup, d / "wrk.lua")
                        cell = run_wrk(t, c, args.duration, d / "wrk.lua")
                        results.setdefault((t.name, c), []).append(cell)
                        print(f"round {rnd + 1} c={c:<3} {t.name:<24} {cell.rps:>9.0f} req/s  p50 {cell.p50_ms:.3f} ms"
                              + (f"  cpu {cell.cpu_us:.1f} us/req (user {cell.user_us:.1f}, sys {cell.sys_us:.1f})"
                                 if cell.cpu_us is not None else ""), flush=True)
        finally:
            for p in reversed(procs):
                stop(p)
    print()
    print(report(results, [t.name for t in targets], concurrencies))
    if args.json:
        args.json.write_text(json.dumps({f"{n}@{c}": [vars(x) for x in cells]
                                         for (n, c), cells in results.items()}, indent=1))
    return 0


def report(results: dict[tuple[str, int], list[Cell]], names: list[str], concurrencies: list[int]) -> str:
    def med(cells: list[Cell], attr: str) -> float:
        return statistics.median(getattr(x, attr) for x in cells)

    lines = ["| path | concurrency | requests/s | p50 ms | p99 ms | added p50 ms | proxy CPU µs/request "
             "| CPU vs nginx |", "|---|---|---|---|---|---|---|---|"]
    for c in concurrencies:
        direct_p50 = med(results[("direct", c)], "p50_ms")
        nginx_cpu = med(results[("nginx", c)], "cpu_us")
        for name in names:
            cells = results[(name, c)]
            cpu = med(cells, "cpu_us") if cells[0].cpu_us is not None else None
            added = med(cells, "p50_ms") - direct_p50 if name != "direct" else None
            lines.append(
                f"| {name} | {c} | {med(cells, 'rps'):,.0f} | {med(cells, 'p50_ms'):.3f} | {med(cells, 'p99_ms'):.3f} "
                f"| {'—' if added is None else f'{added:+.3f}'} | {'—' if cpu is None else f'{cpu:.1f}'} "
                f"| {'—' if cpu is None else f'{cpu / nginx_cpu:.2f}x'} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
