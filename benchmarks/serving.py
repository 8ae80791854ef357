"""Model server benchmark: modeldeck's model server beside KServe, MLServer and a plain Starlette
endpoint, on the same scikit-learn models, in one run.

    .venv/bin/python benchmarks/serving.py              # 10 s per cell, 3 rounds: about 25 minutes
    .venv/bin/python benchmarks/serving.py --quick      # 3 s per cell, 1 round: about 3 minutes
    .venv/bin/python benchmarks/serving.py --servers modeldeck-v1,starlette --models lr

Peers are installed by this script into their own venvs under benchmarks/.peers/ (gitignored):
`pip install kserve` and `pip install mlserver mlserver-sklearn "uvloop<0.22"`, each with this venv's
scikit-learn version so the same pickles load. wrk comes from Debian (`apt-get install -y wrk`, run
by this script when missing and running as root).

Models: a logistic regression on iris (4 features) and a 100-tree random forest on 20 synthetic
features; every server answers predict_proba. Payloads of 1 and 100 rows, wrk with 1 and 16
connections. Each server runs pinned to one core (taskset), wrk to the other, with BLAS/OpenMP
threads at 1. Before timing, each server's answers are checked against the in-process model. All
servers run at once (idle ones cost nothing) and take turns cell by cell, round by round, so they are
compared under the same machine load. Every cell reports requests/s, p50/p99 latency (wrk) and the
server's CPU time per request (from /proc/<pid>/stat, steadier than requests/s on a shared machine).
With --rounds N (default 3), medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / ".peers"
WORK = PEERS / "work"
RESULTS = ROOT / "benchmarks" / "results"
SERVER_CPU, CLIENT_CPU = "0", "1"
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("%(body)s", "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"non2xx":%%d,"socket_errors":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""

STARLETTE_APP = """
import sys
import joblib
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

model = joblib.load(sys.argv[1])


async def predict(request):
    body = await request.json()
    return JSONResponse({"predictions": model.predict_proba(np.asarray(body["instances"])).tolist()})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=False, log_level="warning")
"""

# What KServe's own sklearnserver does (get_predict_input / predict_proba / get_predict_response), with
# both its per-request logs off (latency logging and the uvicorn access log): KServe at its fastest.
KSERVE_APP = """
import logging
import sys
import joblib
import kserve
from kserve.utils.utils import get_predict_input, get_predict_response

path, name = sys.argv.pop(1), sys.argv.pop(1)


class SKLearnModel(kserve.Model):
    def __init__(self):
        super().__init__(name)
        self.load()

    def load(self):
        self._model = joblib.load(path)
        self.ready = True
        return True

    def predict(self, payload, headers=None):
        return get_predict_response(payload, self._model.predict_proba(get_predict_input(payload)), self.name)


model = SKLearnModel()
server = kserve.ModelServer(enable_grpc=False, enable_latency_logging=False)
logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
server.start([model])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Model:
    key: str
    label: str
    path: Path
    X: np.ndarray
    estimator: Any


@dataclass
class Server:
    """One server kind: how to start it, where to post, how to write a request and read an answer."""

    name: str
    python: Callable[[], Path]
    command: Callable[[Model, int, Path], list[str]]
    url: Callable[[Model, int], str]
    body: Callable[[np.ndarray], Any]
    answer: Callable[[Any], Any]
    process_key: str = ""  # servers with the same key share one process (two protocols, one server)
    versions: dict[str, str] = field(default_factory=dict)


def our_python() -> Path:
    return Path(sys.executable)


def peer_python(name: str) -> Callable[[], Path]:
    return lambda: PEERS / name / "bin" / "python"


def v2_body(X: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": "FP64", "data": X.ravel().tolist()}]}


def mlserver_command(m: Model, port: int, work: Path) -> list[str]:
    folder = work / "mlserver" / m.key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
        "parallel_workers": 0, "debug": False,
    }))  # fmt: skip
    (folder / "model-settings.json").write_text(json.dumps({
        "name": m.key, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(m.path), "extra": {"predict_fn": "predict_proba"}},
    }))  # fmt: skip
    return [str(PEERS / "mlserver" / "bin" / "mlserver"), "start", str(folder)]


SERVERS: dict[str, Server] = {
    "modeldeck-v1": Server(
        "modeldeck v1 (Seldon)",
        our_python,
        lambda m, port, w: [
            str(our_python()),
            "-m",
            "modeldeck.serving",
            "--model-uri",
            str(m.path),
            "--port",
            str(port),
            "--name",
            m.key,
            "--cache-dir",
            str(w / "cache"),
        ],
        lambda m, port: f"http://127.0.0.1:{port}/api/v1.0/predictions",
        lambda X: {"data": {"ndarray": X.tolist()}},
        lambda a: a["data"]["ndarray"],
        process_key="modeldeck",
    ),
    "modeldeck-v2": Server(
        "modeldeck v2 (OIP)",
        our_python,
        lambda m, port, w: [],
        lambda m, port: f"http://127.0.0.1:{port}/v2/models/{m.key}/infer",
        v2_body,
        lambda a: np.reshape(a["outputs"][0]["data"], a["outputs"][0]["shape"]),
        process_key="modeldeck",
    ),
    "modeldeck-v1-nofast": Server(
        "modeldeck v1, --no-fast-paths",
        our_python,
        lambda m, port, w: [
            str(our_python()),
            "-m",
            "modeldeck.serving",
            "--model-uri",
            str(m.path),
            "--port",
            str(port),
            "--name",
            m.key,
            "--no-fast-paths",
        ],
        lambda m, port: f"http://127.0.0.1:{port}/api/v1.0/predictions",
        lambda X: {"data": {"ndarray": X.tolist()}},
        lambda a: a["data"]["ndarray"],
    ),
    "kserve-v1": Server(
        "KServe v1",
        peer_python("kserve"),
        lambda m, port, w: [
            str(PEERS / "kserve" / "bin" / "python"),
            str(w / "kserve_app.py"),
            str(m.path),
            m.key,
            "--http_port",
            str(port),
        ],
        lambda m, port: f"http://127.0.0.1:{port}/v1/models/{m.key}:predict",
        lambda X: {"instances": X.tolist()},
        lambda a: a["predictions"],
        process_key="kserve",
    ),
    "kserve-v2": Server(
        "KServe v2",
        peer_python("kserve"),
        lambda m, port, w: [],
        lambda m, port: f"http://127.0.0.1:{port}/v2/models/{m.key}/infer",
        v2_body,
        lambda a: np.reshape(a["outputs"][0]["data"], a["outputs"][0]["shape"]),
        process_key="kserve",
    ),
    "mlserver-v2": Server(
        "MLServer v2",
        peer_python("mlserver"),
        mlserver_command,
        lambda m, port: f"http://127.0.0.1:{port}/v2/models/{m.key}/infer",
        v2_body,
        lambda a: np.reshape(a["outputs"][0]["data"], a["outputs"][0]["shape"]),
    ),
    "starlette": Server(
        "Starlette + predict_proba",
        our_python,
        lambda m, port, w: [str(our_python()), str(w / "starlette_app.py"), str(m.path), str(port)],
        lambda m, port: f"http://127.0.0.1:{port}/predict",
        lambda X: {"instances": X.tolist()},
        lambda a: a["predictions"],
    ),
}
DEFAULT_SERVERS = "modeldeck-v1,modeldeck-v2,kserve-v1,mlserver-v2,starlette"


# -- setup -----------------------------------------------------------------------------------------


def sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def ensure_peers(names: set[str]) -> None:
    pins = f"scikit-learn=={sklearn_version()}"
    wanted = {
        "kserve": ["kserve", pins, "joblib"],
        "mlserver": ["mlserver", "mlserver-sklearn", "uvloop<0.22", pins],
    }
    for venv, packages in wanted.items():
        if venv not in names:
            continue
        py = PEERS / venv / "bin" / "python"
        module = "kserve" if venv == "kserve" else "mlserver_sklearn"
        if py.exists() and subprocess.run([str(py), "-c", f"import {module}"], capture_output=True).returncode == 0:
            continue
        print(f"installing {venv} into {PEERS / venv} ...", flush=True)
        subprocess.run(["python3.11" if shutil.which("python3.11") else sys.executable, "-m", "venv",
                        str(PEERS / venv)], check=True)  # fmt: skip
        subprocess.run([str(PEERS / venv / "bin" / "pip"), "install", "-q", *packages], check=True)


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("wrk not found: install it (Debian/Ubuntu: apt-get install -y wrk)")
    return wrk


def build_models(work: Path) -> dict[str, Model]:
    import joblib
    from sklearn.datasets import load_iris, make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    lr = LogisticRegression(max_iter=1000).fit(X, y)
    Xr, yr = make_classification(n_samples=2000, n_features=20, n_informative=8, random_state=0)
    Xr = np.round(Xr, 6)
    rf = RandomForestClassifier(n_estimators=100, random_state=0).fit(Xr, yr)
    rng = np.random.default_rng(0)
    models = {}
    for key, label, est, data in (("lr", "LR", lr, X), ("rf", "RF100", rf, Xr)):
        (work / "models" / key).mkdir(parents=True, exist_ok=True)
        path = work / "models" / key / "model.joblib"
        joblib.dump(est, path)
        models[key] = Model(key, label, path, data[rng.permutation(len(data))[:100]], est)
    return models


# -- running ---------------------------------------------------------------------------------------


def post(url: str, body: bytes, timeout: float = 10) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


class Process:
    def __init__(self, cmd: list[str], log: Path) -> None:
        env = {**os.environ, **THREAD_ENV}
        self.log = log
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *cmd], stdout=log.open("wb"), stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )  # fmt: skip

    def cpu_seconds(self) -> float:
        """utime + stime of the server and its children (threads included), in seconds."""
        total, tick = 0.0, os.sysconf("SC_CLK_TCK")
        for pid in self._tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
        return total

    def _tree(self) -> list[int]:
        pids, frontier = [self.proc.pid], [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                children = []
            pids += [int(c) for c in children]
            frontier += [int(c) for c in children]
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def wait_and_check(server: Server, url: str, model: Model, proc: Process, timeout: float = 180) -> str | None:
    """None when the server answers like the in-process model, else what is wrong."""
    body = json.dumps(server.body(model.X)).encode()
    deadline = time.monotonic() + timeout
    while True:
        if proc.proc.poll() is not None:
            return f"exited {proc.proc.returncode}: {proc.log.read_text()[-400:]}"
        try:
            status, answer = post(url, body)
            if status == 200:
                break
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            return "not ready in time"
        time.sleep(0.2)
    for X in (model.X[:1], model.X):
        status, answer = post(url, json.dumps(server.body(X)).encode())
        want = model.estimator.predict_proba(X)
        got = np.asarray(server.answer(answer), dtype=float) if status == 200 else None
        if got is None or got.shape != want.shape or not np.allclose(got, want, rtol=1e-9, atol=1e-12):
            return f"wrong answer ({status}): {str(answer)[:200]}"
    return None


def run_wrk(wrk: str, url: str, script: Path, conns: int, seconds: float) -> dict[str, Any]:
    duration = f"-d{max(1, round(seconds))}s"
    cmd = ["taskset", "-c", CLIENT_CPU, wrk, "-t1", f"-c{conns}", duration, "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out[-400:]}")
    r: dict[str, Any] = json.loads(line[len("RESULT ") :])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def measure(args: argparse.Namespace, wrk: str, models: dict[str, Model], names: list[str]) -> dict[str, Any]:
    """Per model: start every server at once (idle ones cost nothing), then for each cell take turns,
    round by round, so all servers are measured under the same machine load (the machine may be shared)."""
    results: dict[str, Any] = {}
    for model_key in args.models.split(","):
        model = models[model_key]
        procs: dict[str, tuple[Process, int]] = {}
        try:
            for n in names:
                key = SERVERS[n].process_key or n
                if key not in procs:
                    port = free_port()
                    procs[key] = (
                        Process(SERVERS[n].command(model, port, WORK), WORK / "logs" / f"{key}-{model.key}.log"),
                        port,
                    )
            live: dict[str, tuple[str, Process]] = {}
            for n in names:
                proc, port = procs[SERVERS[n].process_key or n]
                url = SERVERS[n].url(model, port)
                problem = wait_and_check(SERVERS[n], url, model, proc)
                if problem:
                    print(f"  {n} {model.label}: SKIPPED, {problem}", flush=True)
                    results.update({f"{n}|{model.key}|{r}|{c}": {"error": problem} for r in (1, 100) for c in (1, 16)})
                else:
                    live[n] = (url, proc)
            for rows in (1, 100):
                scripts = {n: _script(n, model, rows) for n in live}
                for n, (url, _) in live.items():
                    run_wrk(wrk, url, scripts[n], 16, args.warmup)  # warm-up
                for conns in (1, 16):
                    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in live}
                    for _ in range(args.rounds):
                        for n, (url, proc) in live.items():
                            cpu0 = proc.cpu_seconds()
                            r = run_wrk(wrk, url, scripts[n], conns, args.duration)
                            r["cpu_us"] = (proc.cpu_seconds() - cpu0) / max(1, r["requests"]) * 1e6
                            runs[n].append(r)
                    for n, rounds in runs.items():
                        cell = {
                            k: statistics.median(r[k] for r in rounds) for k in ("rps", "p50_us", "p99_us", "cpu_us")
                        }
                        cell["errors"] = sum(r["non2xx"] + r["socket_errors"] for r in rounds)
                        results[f"{n}|{model.key}|{rows}|{conns}"] = cell
                        print(f"  {n:13} {model.label:5} {rows:3} rows c={conns:<2} {cell['rps']:9.0f} req/s  "
                              f"p50 {cell['p50_us'] / 1000:6.2f} ms  cpu {cell['cpu_us']:7.0f} us/req  "
                              f"errors {cell['errors']}", flush=True)  # fmt: skip
        finally:
            for proc, _ in procs.values():
                proc.stop()
    return results


def _script(name: str, model: Model, rows: int) -> Path:
    body = WORK / "bodies" / f"{name}-{model.key}-{rows}.json"
    body.parent.mkdir(parents=True, exist_ok=True)
    body.write_text(json.dumps(SERVERS[name].body(model.X[:rows])))
    script = body.with_suffix(".lua")
    script.write_text(WRK_SCRIPT % {"body": body})
    return script


# -- report ----------------------------------------------------------------------------------------

CELLS = [(m, rows, c) for m in ("lr", "rf") for rows in (1, 100) for c in (1, 16)]
LABELS = {"lr": "LR", "rf": "RF100"}


def _table(results: dict[str, Any], names: list[str], metric: str, fmt: Callable[[float], str]) -> list[str]:
    cells = [(m, r, c) for m, r, c in CELLS if any(f"{n}|{m}|{r}|{c}" in results for n in names)]
    head = "| server | " + " | ".join(f"{LABELS[m]} {r} row{'s' if r > 1 else ''} c={c}" for m, r, c in cells) + " |"
    lines = [head, "|---" * (len(cells) + 1) + "|"]
    for n in names:
        row = []
        for m, r, c in cells:
            cell = results.get(f"{n}|{m}|{r}|{c}")
            row.append("—" if cell is None or "error" in cell else fmt(cell[metric]))
        lines.append(f"| {SERVERS[n].name} | " + " | ".join(row) + " |")
    return lines


def _get(results: dict[str, Any], key: str, metric: str) -> float | None:
    cell = results.get(key)
    return None if cell is None or "error" in cell else float(cell[metric])


def ratios(results: dict[str, Any], names: list[str]) -> list[str]:
    out = []

    def ratio(a: str, b: str, metric: str, what: str, target: str, ok: Callable[[float], bool]) -> None:
        x, y = _get(results, a, metric), _get(results, b, metric)
        if x is not None and y:
            verdict = "met" if ok(x / y) else "MISSED"
            out.append(f"- {what}: **{x / y:.2f}x** (target {target}: {verdict})")

    ratio("modeldeck-v1|lr|1|16", "kserve-v1|lr|1|16", "rps", "LR 1 row c=16, requests/s, modeldeck v1 / KServe v1",
          "≥ 2x", lambda r: r >= 2)  # fmt: skip
    ratio("modeldeck-v2|lr|1|16", "mlserver-v2|lr|1|16", "rps",
          "LR 1 row c=16, requests/s, modeldeck v2 / MLServer v2", "≥ 3x", lambda r: r >= 3)  # fmt: skip
    ratio("modeldeck-v1|lr|1|16", "mlserver-v2|lr|1|16", "rps",
          "LR 1 row c=16, requests/s, modeldeck v1 / MLServer v2", "≥ 3x", lambda r: r >= 3)  # fmt: skip
    ratio("modeldeck-v1|lr|1|1", "kserve-v1|lr|1|1", "p50_us", "LR 1 row c=1, p50 latency, modeldeck v1 / KServe v1",
          "≤ 0.6x", lambda r: r <= 0.6)  # fmt: skip
    for ours in ("modeldeck-v1", "modeldeck-v2"):
        worst = []
        for m, r, c in CELLS:
            x, y = _get(results, f"{ours}|{m}|{r}|{c}", "rps"), _get(results, f"starlette|{m}|{r}|{c}", "rps")
            if x is not None and y:
                worst.append((x / y, f"{LABELS[m]} {r} row(s) c={c}"))
        if worst:
            low = min(worst)
            verdict = "met" if low[0] >= 0.97 else "MISSED"
            out.append(f"- {SERVERS[ours].name} / Starlette, requests/s, lowest cell ({low[1]}): **{low[0]:.2f}x** "
                       f"(target ≥ 1x, within 3% noise: {verdict})")  # fmt: skip
    return out


def environment() -> dict[str, str]:
    env = {"python": platform.python_version(), "scikit-learn": sklearn_version()}
    try:
        cpu = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
        env["cpu"] = cpu.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    for venv, pkg in (("kserve", "kserve"), ("mlserver", "mlserver")):
        py = PEERS / venv / "bin" / "python"
        if py.exists():
            code = f"import importlib.metadata as m; print(m.version('{pkg}'))"
            env[pkg] = subprocess.run([str(py), "-c", code], capture_output=True, text=True).stdout.strip()
    import uvicorn

    env["uvicorn"] = uvicorn.__version__
    return env


def report(results: dict[str, Any], names: list[str], args: argparse.Namespace) -> str:
    env = environment()
    lines = [
        f"Run: `{' '.join(['benchmarks/serving.py', *sys.argv[1:]])}`, {args.duration:g} s per cell, "
        f"{args.rounds} round(s), {time.strftime('%Y-%m-%d')}. " + ", ".join(f"{k} {v}" for k, v in env.items()),
        "",
        "Requests per second:",
        "",
        *_table(results, names, "rps", lambda v: f"{v:,.0f}"),
        "",
        "p50 latency (ms):",
        "",
        *_table(results, names, "p50_us", lambda v: f"{v / 1000:.2f}"),
        "",
        "p99 latency (ms):",
        "",
        *_table(results, names, "p99_us", lambda v: f"{v / 1000:.2f}"),
        "",
        "Server CPU time per request (µs):",
        "",
        *_table(results, names, "cpu_us", lambda v: f"{v:,.0f}"),
        "",
        "Targets:",
        "",
        *ratios(results, names),
    ]
    errors = [k for k, v in results.items() if "error" in v or v.get("errors")]
    if errors:
        lines += ["", "Cells with errors or skipped: " + ", ".join(errors)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per cell")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server, model and payload")
    p.add_argument("--rounds", type=int, default=3, help="runs per cell (medians reported)")
    p.add_argument("--quick", action="store_true", help="3 s cells, 1 s warm-ups, 1 round")
    p.add_argument("--servers", default=DEFAULT_SERVERS, help=f"any of {', '.join(SERVERS)}")
    p.add_argument("--models", default="lr,rf", help="lr, rf or both")
    p.add_argument("--skip-install", action="store_true", help="do not install missing peers")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 3.0, 1.0, 1
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        p.error(f"unknown servers {unknown}; choose from {', '.join(SERVERS)}")
    if len(os.sched_getaffinity(0)) < 2:
        print("warning: fewer than 2 CPUs; server and load generator will share one", file=sys.stderr)
    # SIGTERM ends the run like Ctrl-C: the servers started so far are stopped (finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wrk = ensure_wrk()
    if not args.skip_install:
        ensure_peers({n.split("-")[0] for n in names})
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "logs").mkdir(exist_ok=True)
    (WORK / "starlette_app.py").write_text(STARLETTE_APP)
    (WORK / "kserve_app.py").write_text(KSERVE_APP)
    models = build_models(WORK)
    results = measure(args, wrk, models, names)
    text = report(results, names, args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"serving-{stamp}.md").write_text(text)
    (RESULTS / f"serving-{stamp}.json").write_text(json.dumps(results, indent=1))
    print("\n" + text)
    print(f"written to {RESULTS / f'serving-{stamp}.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
