"""LocalRuntime with real processes: a tiny stand-in model server (mapped through image_commands) for the
runtime's own behaviour, and the real `python -m modeldeck.serving` with a scikit-learn model."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from modeldeck.runtimes.base import Capacity, PermanentError, Replica, ReplicaSpec, TemporaryError
from modeldeck.runtimes.local import LocalRuntime
from modeldeck.settings import Settings

pytestmark = pytest.mark.slow
T = TypeVar("T")

STANDIN = r'''
import argparse, os, signal, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--name", required=True)
args = p.parse_args()
env = os.environ.get
mode = env("STANDIN_MODE", "ok")
print(f"standin start name={args.name} mode={mode} cuda={env('CUDA_VISIBLE_DEVICES')!r} "
      f"omp={env('OMP_NUM_THREADS')} leak={env('MODELDECK_LEAK')!r} greeting={env('GREETING')!r}", flush=True)
for i in range(int(env("STANDIN_SPAM", "0")) // 100):
    print(f"spam {i:08d} " + "x" * 85)
sys.stdout.flush()
if mode == "crash":
    print("boom: the model exploded", file=sys.stderr, flush=True)
    sys.exit(1)
if mode == "loadfail" and not os.path.exists(env("STANDIN_MODEL_FILE", "/nonexistent")):
    print("ModelLoadFailed: no model file at " + env("STANDIN_MODEL_FILE", "?"), file=sys.stderr, flush=True)
    sys.exit(2)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503 if mode == "hang" else 200)
        self.end_headers()
    def log_message(self, *a):
        pass

def on_term(*_):
    if env("STANDIN_TERM") == "ignore":
        print("ignoring SIGTERM", flush=True)
        return
    print("draining", flush=True)
    time.sleep(float(env("STANDIN_DRAIN_S", "0")))
    print("drained", flush=True)
    os._exit(0)

signal.signal(signal.SIGTERM, on_term)
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
'''

# Runs a LocalRuntime in its own process, so the test can kill -9 "the server".
SERVER = r'''
import json, sys, time
from pathlib import Path
from modeldeck.runtimes.base import ReplicaSpec
from modeldeck.runtimes.local import LocalRuntime
from modeldeck.settings import Settings

conf = json.loads(sys.argv[1])
rt = LocalRuntime(Settings(data_dir=Path(conf["data_dir"]), image_commands=conf["image_commands"]))
for s in conf["specs"]:
    rt.start_replica(ReplicaSpec(**s))
while not all(r.ready for s in conf["specs"] for r in rt.observe(s["deployment_id"])):
    time.sleep(0.05)
rt.stop_replica(conf["stop"], grace_s=1.5)
print("READY", flush=True)
time.sleep(600)
'''


@pytest.fixture
def standin(tmp_path: Path) -> Path:
    path = tmp_path / "standin.py"
    path.write_text(STANDIN)
    return path


def make_settings(tmp_path: Path, standin: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "image_commands": {
            "test/standin": (sys.executable, str(standin), "--port", "{port}", "--name", "{name}"),
            "test/missing": ("/nonexistent/bin/model-server", "--port", "{port}"),
        },
        "drain_grace_s": 2.0,
        "log_max_bytes": 5 * 1024 * 1024,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def runtime(tmp_path: Path, standin: Path) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(make_settings(tmp_path, standin), capacity=Capacity(cpu=4, memory=8 << 30, gpus=[0, 1]))
    yield rt
    rt.close()


def spec(index: int = 0, *, deployment: str = "dep-a", version: int = 1, image: str = "test/standin:1",
         env: dict[str, str] | None = None, cpu: float = 0.5, memory: int = 256 << 20, gpu: int = 0,
         timeout: float = 30.0, model_uri: str | None = None) -> ReplicaSpec:
    return ReplicaSpec(
        deployment_id=deployment, version=version, index=index, image=image, model_uri=model_uri,
        env=env or {}, cpu=cpu, memory=memory, gpu=gpu, readiness_timeout_s=timeout, template=f"t{version}",
    )


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def replica(rt: LocalRuntime, name: str) -> Replica | None:
    return next((r for r in rt.observe(name.split("-g")[0]) if r.name == name), None)


def wait_state(rt: LocalRuntime, name: str, state: str, timeout: float = 20.0) -> Replica:
    return wait_for(lambda: (r if (r := replica(rt, name)) and r.state == state else None), timeout,
                    f"{name} {state}")


def pid_of(settings_or_dir: Path, name: str) -> int:
    record = json.loads((settings_or_dir / "runtime" / "replicas" / f"{name}.json").read_text())
    return int(record["pid"])


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_ready_replica_has_address_env_and_memory_limit(
    runtime: LocalRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELDECK_LEAK", "server-secret")
    s = spec(env={"GREETING": "hi", "OMP_NUM_THREADS": "3"}, cpu=2.5)
    runtime.start_replica(s)
    rep = wait_state(runtime, s.name, "ready")
    assert rep.address and rep.template == "t1" and rep.restarts == 0 and rep.started_at is not None
    assert httpx.get(f"http://{rep.address}/v2/health/ready").status_code == 200
    logs = runtime.read_logs("dep-a", replica=s.name)
    assert "greeting='hi'" in logs and "omp=3" in logs and "cuda=''" in logs and "leak=None" in logs
    limits = Path(f"/proc/{pid_of(tmp_path / 'data', s.name)}/limits").read_text()
    assert any(line.startswith("Max data size") and str(256 << 20) in line for line in limits.splitlines())
    runtime.start_replica(s)  # idempotent
    assert [r.name for r in runtime.observe("dep-a")] == [s.name]
    assert runtime.deployments() == {"dep-a"}
    assert [u.name for u in runtime.usage("dep-a")] == [s.name]
    assert runtime.usage("dep-a")[0].memory > 1_000_000


def test_kill9_of_a_replica_restarts_it(runtime: LocalRuntime, tmp_path: Path) -> None:
    s = spec()
    runtime.start_replica(s)
    wait_state(runtime, s.name, "ready")
    pid = pid_of(tmp_path / "data", s.name)
    os.kill(pid, signal.SIGKILL)
    rep = wait_for(lambda: (r if (r := replica(runtime, s.name)) and r.restarts == 1 and r.ready else None),
                   what="restart")
    assert pid_of(tmp_path / "data", s.name) != pid and rep.reason is None
    logs = runtime.read_logs("dep-a", replica=s.name, tail=1000)
    assert "--- modeldeck: replica restarted (exit code -9, SIGKILL)" in logs
    assert logs.count("standin start") == 2  # the first run's lines stay readable


def test_crash_loop_fails_with_the_last_log_lines(runtime: LocalRuntime) -> None:
    s = spec(env={"STANDIN_MODE": "crash"})
    runtime.start_replica(s)
    rep = wait_state(runtime, s.name, "failed")
    assert rep.reason == "CrashLoop" and rep.address is None
    assert rep.message and "boom: the model exploded" in rep.message and "exit code 1" in rep.message


def test_model_load_failure_then_recovery(runtime: LocalRuntime, tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    s = spec(env={"STANDIN_MODE": "loadfail", "STANDIN_MODEL_FILE": str(model)})
    runtime.start_replica(s)
    rep = wait_state(runtime, s.name, "failed")
    assert rep.reason == "ModelLoadFailed"
    assert rep.message and f"ModelLoadFailed: no model file at {model}" in rep.message
    model.write_text("now it exists")  # the replica keeps retrying with backoff and recovers by itself
    rep = wait_state(runtime, s.name, "ready")
    assert rep.reason is None and rep.message is None and rep.restarts >= 1


def test_readiness_timeout_kills_and_retries(runtime: LocalRuntime, tmp_path: Path) -> None:
    s = spec(env={"STANDIN_MODE": "hang"}, timeout=1.0)
    runtime.start_replica(s)
    pid = wait_for(lambda: pid_of(tmp_path / "data", s.name))
    rep = wait_state(runtime, s.name, "failed", timeout=10)
    assert rep.reason == "ReadinessTimeout" and rep.message and "not ready within 1 s" in rep.message
    assert "standin start" in rep.message
    wait_for(lambda: gone(pid), what="hung replica killed")
    wait_for(lambda: (r := replica(runtime, s.name)) and r.restarts >= 1, what="retry")


def test_images_the_local_runtime_cannot_run(runtime: LocalRuntime) -> None:
    assert runtime.validate_image("modeldeck/sklearn-server:1.4") is None
    assert runtime.validate_image("modeldeck/onnx-server@sha256:abc") is None
    assert runtime.validate_image("test/standin") is None
    message = runtime.validate_image("acme/scorer:2")
    assert message and "acme/scorer:2" in message and "modeldeck/sklearn-server" in message
    assert "test/standin" in message
    with pytest.raises(PermanentError) as refused:
        runtime.start_replica(spec(image="acme/scorer:2"))
    assert refused.value.reason == "ImageNotRunnable"
    with pytest.raises(PermanentError) as missing:
        runtime.start_replica(spec(image="test/missing"))
    assert missing.value.reason == "ImageNotRunnable" and "/nonexistent/bin/model-server" in missing.value.message
    assert "cannot run" in runtime.read_logs("dep-a")
    with pytest.raises(PermanentError) as no_model:
        runtime.start_replica(spec(image="modeldeck/sklearn-server:1"))
    assert no_model.value.reason == "ModelLoadFailed"
    assert runtime.observe("dep-a") == []


def test_capacity_is_respected_and_gpus_are_exclusive(runtime: LocalRuntime) -> None:
    for too_big in (spec(cpu=100), spec(memory=9 << 30), spec(gpu=3)):
        with pytest.raises(PermanentError) as e:
            runtime.start_replica(too_big)
        assert e.value.reason == "Unschedulable" and "more than this machine has" in e.value.message
    first, second, third = (spec(i, gpu=1) for i in range(3))
    runtime.start_replica(first)
    runtime.start_replica(second)
    with pytest.raises(PermanentError) as full:
        runtime.start_replica(third)
    assert full.value.reason == "Unschedulable" and "0 GPU(s)" in full.value.message
    for s in (first, second):
        wait_state(runtime, s.name, "ready")
    logs = runtime.read_logs("dep-a")
    assert f"[{first.name}] standin start" in logs and "cuda='0'" in logs and "cuda='1'" in logs
    runtime.stop_replica(first.name, grace_s=2)
    wait_for(lambda: replica(runtime, first.name) is None, what="first stopped")
    runtime.start_replica(third)
    wait_state(runtime, third.name, "ready")
    assert "cuda='0'" in runtime.read_logs("dep-a", replica=third.name)


def test_stop_drains_then_kills_after_the_grace(runtime: LocalRuntime, tmp_path: Path) -> None:
    drains = spec(0, env={"STANDIN_DRAIN_S": "0.5"})
    stubborn = spec(1, env={"STANDIN_TERM": "ignore"})
    for s in (drains, stubborn):
        runtime.start_replica(s)
        wait_state(runtime, s.name, "ready")
    stubborn_pid = pid_of(tmp_path / "data", stubborn.name)
    began = time.monotonic()
    runtime.stop_replica(drains.name, grace_s=10)
    runtime.stop_replica(stubborn.name, grace_s=0.5)
    runtime.stop_replica(stubborn.name, grace_s=0.5)  # idempotent
    assert {r.state for r in runtime.observe("dep-a")} == {"terminating"}
    assert all(r.address is None for r in runtime.observe("dep-a"))
    wait_for(lambda: runtime.observe("dep-a") == [], what="both gone")
    assert time.monotonic() - began < 5
    assert gone(stubborn_pid)
    logs = runtime.read_logs("dep-a")
    assert f"[{drains.name}] draining" in logs and f"[{drains.name}] drained" in logs
    assert f"[{stubborn.name}] ignoring SIGTERM" in logs
    assert runtime.deployments() == set()


def test_close_leaves_no_process(tmp_path: Path, standin: Path) -> None:
    rt = LocalRuntime(make_settings(tmp_path, standin, drain_grace_s=0.5))
    specs = [spec(0), spec(1, env={"STANDIN_TERM": "ignore"})]
    for s in specs:
        rt.start_replica(s)
        wait_state(rt, s.name, "ready")
    pids = [pid_of(tmp_path / "data", s.name) for s in specs]
    rt.close()
    assert all(gone(pid) for pid in pids)
    assert list((tmp_path / "data" / "runtime" / "replicas").iterdir()) == []
    with pytest.raises(TemporaryError):
        rt.start_replica(spec(2))
    assert "ignoring SIGTERM" in rt.read_logs("dep-a")  # logs outlive the replicas


def test_a_new_server_adopts_what_a_killed_one_left(tmp_path: Path, standin: Path) -> None:
    settings = make_settings(tmp_path, standin)
    old, new, dead = spec(0, version=1, env={"STANDIN_TERM": "ignore"}), spec(0, version=2), spec(1, version=2)
    conf = {
        "data_dir": str(settings.data_dir), "image_commands": {k: list(v) for k, v in settings.image_commands.items()},
        "specs": [{**vars(s), "env": dict(s.env)} for s in (old, new, dead)], "stop": old.name,
    }
    server = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(conf)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "READY"
    finally:
        server.kill()  # the control plane dies mid rolling update: old draining, new serving
        server.wait()
    data = tmp_path / "data"
    pids = {s.name: pid_of(data, s.name) for s in (old, new, dead)}
    os.kill(pids[dead.name], signal.SIGKILL)  # and one replica dies while no server watches
    wait_for(lambda: gone(pids[dead.name]))

    rt = LocalRuntime(settings)
    try:
        adopted = replica(rt, new.name)
        assert adopted is not None and adopted.ready and adopted.address  # served throughout
        assert pid_of(data, new.name) == pids[new.name]
        assert (r := replica(rt, old.name)) is not None and r.state == "terminating"
        wait_for(lambda: replica(rt, old.name) is None, what="old replica killed after its grace")
        assert gone(pids[old.name])
        restarted = wait_state(rt, dead.name, "ready")
        assert restarted.restarts == 1
        assert "replica restarted (exit code unknown" in rt.read_logs("dep-a", replica=dead.name)
        pids = {s.name: pid_of(data, s.name) for s in (new, dead)}
    finally:
        rt.close()
    assert all(gone(pid) for pid in pids.values())


def test_logs_tail_merge_and_follow(runtime: LocalRuntime) -> None:
    a, b = spec(0, env={"STANDIN_DRAIN_S": "0.3"}), spec(1)
    for s in (a, b):
        runtime.start_replica(s)
        wait_state(runtime, s.name, "ready")
    assert len(runtime.read_logs("dep-a", replica=a.name, tail=1).splitlines()) == 1
    merged = runtime.read_logs("dep-a", tail=2).splitlines()
    assert len(merged) == 4 and merged[0].startswith(f"[{a.name}] ") and merged[-1].startswith(f"[{b.name}] ")
    assert runtime.read_logs("dep-a", replica="dep-b-g1-r0") == ""
    assert runtime.read_logs("dep-a", replica="../../etc/passwd") == ""

    async def follow() -> list[str]:
        stream = runtime.follow_logs("dep-a")
        runtime.stop_replica(a.name, grace_s=5)
        lines: list[str] = []
        async for line in stream:
            lines.append(line)
            if "drained" in line:
                return lines
        return lines

    lines = asyncio.run(asyncio.wait_for(follow(), timeout=10))
    assert lines == [f"[{a.name}] draining\n", f"[{a.name}] drained\n"]  # only what came after the call
    runtime.remove_logs("dep-a")
    assert runtime.read_logs("dep-a") == ""


def test_logs_are_capped_by_rotation(tmp_path: Path, standin: Path) -> None:
    rt = LocalRuntime(make_settings(tmp_path, standin, log_max_bytes=200_000))
    try:
        s = spec(env={"STANDIN_SPAM": "1000000"})
        rt.start_replica(s)
        wait_state(rt, s.name, "ready")
        log_file = tmp_path / "data" / "logs" / "dep-a" / f"{s.name}.log"
        wait_for(lambda: log_file.with_name(log_file.name + ".1").exists(), what="rotation")
        total = log_file.stat().st_size + log_file.with_name(log_file.name + ".1").stat().st_size
        assert total <= 200_000 + 64 * 1024
        last = rt.read_logs("dep-a", replica=s.name, tail=1)
        assert last.startswith("spam 00009999 ")  # the newest lines are kept
    finally:
        rt.close()


@pytest.fixture
def sklearn_model(tmp_path: Path) -> Path:
    joblib = pytest.importorskip("joblib")
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path / "models"
    folder.mkdir()
    model = LogisticRegression().fit([[0.0, 0.0], [1.0, 1.0], [0.1, 0.0], [0.9, 1.0]], [0, 1, 0, 1])
    joblib.dump(model, folder / "model.joblib")
    return folder / "model.joblib"


def test_real_model_server_serves_and_reports_a_missing_model(
    tmp_path: Path, standin: Path, sklearn_model: Path
) -> None:
    pytest.importorskip("modeldeck.serving.cli")
    rt = LocalRuntime(make_settings(tmp_path, standin, model_roots=(sklearn_model.parent,)))
    try:
        good = spec(0, image="modeldeck/sklearn-server:latest", memory=2 << 30, timeout=60,
                    model_uri=sklearn_model.as_uri())
        bad = spec(1, image="modeldeck/sklearn-server:latest", memory=2 << 30, timeout=60,
                   model_uri=(sklearn_model.parent / "missing.joblib").as_uri())
        rt.start_replica(good)
        rt.start_replica(bad)
        rep = wait_state(rt, good.name, "ready", timeout=60)
        body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [0.95, 1.0]}]}
        resp = httpx.post(f"http://{rep.address}/v2/models/dep-a/infer", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        failed = wait_state(rt, bad.name, "failed", timeout=60)
        assert failed.reason == "ModelLoadFailed" and failed.message and "missing.joblib" in failed.message
    finally:
        rt.close()
