"""OS-level pieces of the local runtime: spawning, signalling, probing, ports and replica records."""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import resource
import signal
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import psutil

from modeldeck.runtimes.base import ReplicaSpec

READY_PATH = "/v2/health/ready"
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class ReplicaProcess:
    """One replica's process: our child (Popen) or one adopted from a previous server (psutil)."""

    def __init__(self, pid: int, *, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self._popen = popen
        self._ps: psutil.Process | None = None
        with contextlib.suppress(psutil.Error):
            self._ps = psutil.Process(pid)
        self.create_time = self._ps.create_time() if self._ps is not None else 0.0
        self.returncode: int | None = None
        self.exited = self._ps is None and popen is None

    @classmethod
    def adopt(cls, pid: int, create_time: float) -> ReplicaProcess | None:
        """The process if ``pid`` still is the one we started (same create time) and alive."""
        try:
            ps = psutil.Process(pid)
            if abs(ps.create_time() - create_time) > 0.01 or ps.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return cls(pid)

    def poll(self) -> bool:
        """True once the process has exited (``returncode`` is None when it was not our child)."""
        if self.exited:
            return True
        if self._popen is not None:
            self.returncode = self._popen.poll()
            self.exited = self.returncode is not None
        else:
            try:
                self.exited = self._ps is None or not self._ps.is_running() or (
                    self._ps.status() == psutil.STATUS_ZOMBIE
                )
            except psutil.Error:
                self.exited = True
        return self.exited

    def signal(self, sig: int) -> None:
        """Signal the replica's whole process group (it leads its own session), or what is left of it."""
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            if not self.poll():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(self.pid, sig)

    def tree(self) -> list[psutil.Process]:
        if self._ps is None or self.poll():
            return []
        try:
            return [self._ps, *self._ps.children(recursive=True)]
        except psutil.Error:
            return []


def spawn(argv: list[str], *, env: Mapping[str, str], cwd: Path, log_fd: int, memory: int) -> ReplicaProcess:
    """Start a replica in its own session, output appended to its log. Raises OSError when it cannot run."""
    popen = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT, cwd=cwd, env=dict(env),
        start_new_session=True, close_fds=True,
    )
    _limit_memory(popen.pid, memory)
    return ReplicaProcess(popen.pid, popen=popen)


def _limit_memory(pid: int, memory: int) -> None:
    """RLIMIT_DATA (allocated heap, not address space), set right after exec because preexec_fn is unsafe
    in a threaded server. RLIMIT_AS would count the ~400 MB of address space numpy/BLAS map unused."""
    if memory <= 0 or not hasattr(resource, "prlimit"):
        return
    with contextlib.suppress(OSError, ValueError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        limit = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
        resource.prlimit(pid, resource.RLIMIT_DATA, (limit, limit))


def replica_env(base: Mapping[str, str], spec: ReplicaSpec, gpus: tuple[int, ...]) -> dict[str, str]:
    """The server's environment minus MODELDECK_* (credentials live there), then the deployment's env, then
    thread hints the deployment did not set, then the GPU assignment, which it cannot override."""
    env = {k: v for k, v in base.items() if not k.startswith("MODELDECK_")}
    env.update({str(k): str(v) for k, v in spec.env.items()})
    threads = str(max(1, math.floor(spec.cpu)))
    for name in _THREAD_VARS:
        if name not in spec.env:
            env[name] = threads
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA numbers devices as NVML does
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)  # "" hides every GPU from CPU replicas
    return env


def free_port(avoid: set[int]) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port
    raise OSError("no free TCP port on 127.0.0.1")


def probe_ready(port: int, timeout_s: float = 1.0) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", READY_PATH)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"exit code {code}, {signal.Signals(-code).name}"
    return f"exit code {code}"


class RecordStore:
    """``<data_dir>/runtime/replicas/<name>.json``: enough to adopt or re-create a replica after a crash."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def save(self, name: str, record: dict[str, Any]) -> None:
        path = self.root / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        # Owner-only: the record holds the deployment's env, which may carry credentials.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record, sort_keys=True))
        os.replace(tmp, path)

    def delete(self, name: str) -> None:
        (self.root / f"{name}.json").unlink(missing_ok=True)

    def load(self) -> list[dict[str, Any]]:
        records = []
        for path in sorted(self.root.glob("*.json")):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # a torn write from a crash: nothing to adopt
        return records


def spec_to_dict(spec: ReplicaSpec) -> dict[str, Any]:
    data = asdict(spec)
    data["env"] = dict(spec.env)
    return data


def spec_from_dict(data: dict[str, Any]) -> ReplicaSpec:
    known = {f.name for f in fields(ReplicaSpec)}
    return ReplicaSpec(**{k: v for k, v in data.items() if k in known})
