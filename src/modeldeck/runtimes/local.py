"""The embedded default runtime: every replica is a supervised OS process on this machine.

``start_replica`` only spawns; one supervisor thread polls the processes, probes readiness, restarts
exited replicas with exponential backoff and classifies failures. Each replica is recorded on disk so
that a server killed with ``kill -9`` adopts its still-running replicas on the next start (they keep
serving meanwhile); a clean ``close()`` drains and stops all of them. See docs/runtime.md.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import psutil

from modeldeck.db import utcnow
from modeldeck.runtimes.base import (
    Capacity,
    PermanentError,
    Replica,
    ReplicaSpec,
    ReplicaUsage,
    TemporaryError,
)
from modeldeck.runtimes.local_capacity import Ledger, Nvml, detect_capacity, human_bytes
from modeldeck.runtimes.local_images import CommandContext, ImageCommands
from modeldeck.runtimes.local_logs import LogStore
from modeldeck.runtimes.local_process import (
    READY_PATH,
    RecordStore,
    ReplicaProcess,
    describe_exit,
    free_port,
    probe_ready,
    replica_env,
    spawn,
)
from modeldeck.runtimes.local_replica import HOST, Supervised
from modeldeck.settings import Settings

log = logging.getLogger("modeldeck.runtime.local")

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_S = 60.0  # ready this long: the restart backoff starts over
CRASHLOOP_AFTER = 2  # exits without becoming ready in between
READY_PROBE_EVERY_S = 2.0
UNREADY_AFTER_FAILED_PROBES = 3
MESSAGE_LINES = 20


class LocalRuntime:
    def __init__(self, settings: Settings, *, capacity: Capacity | None = None, tick_s: float = 0.2) -> None:
        data_dir = settings.data_dir.resolve()
        self._settings = settings
        self._images = ImageCommands(
            settings.image_commands, model_roots=settings.model_roots, cache_dir=data_dir / "cache" / "models"
        )
        self._nvml = Nvml()
        self._ledger = Ledger(capacity or detect_capacity(self._nvml), cpu_overcommit=settings.cpu_overcommit)
        self._logs = LogStore(data_dir / "logs", max_bytes=settings.log_max_bytes)
        self._records = RecordStore(data_dir / "runtime" / "replicas")
        self._workdirs = data_dir / "runtime" / "work"
        self._lock = threading.RLock()
        self._reps: dict[str, Supervised] = {}
        self._usage_procs: dict[int, psutil.Process] = {}  # kept between calls for cpu_percent
        self._usage_lock = threading.Lock()
        self._probe_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="modeldeck-probe")
        self._tick_s = tick_s
        self._closing = threading.Event()
        self._recover()
        self._thread = threading.Thread(target=self._run, name="modeldeck-local-runtime", daemon=True)
        self._thread.start()

    # -- Runtime protocol ---------------------------------------------------------------------
    def validate_image(self, image: str) -> str | None:
        return self._images.validate(image)

    def start_replica(self, spec: ReplicaSpec) -> None:
        problem = self._images.validate(spec.image)
        if problem is not None:
            raise PermanentError("ImageNotRunnable", problem)
        if self._images.needs_model_uri(spec.image) and not spec.model_uri:
            raise PermanentError("ModelLoadFailed", f"the prepackaged image {spec.image} needs a model URI")
        with self._lock:
            if self._closing.is_set():
                raise TemporaryError("the local runtime is shutting down", retry_after=5.0)
            existing = self._reps.get(spec.name)
            if existing is not None:
                if existing.terminating:
                    raise TemporaryError(f"replica {spec.name} is still draining", retry_after=1.0)
                return
            live = list(self._reps.values())
            gpus = self._ledger.fit(
                cpu=spec.cpu, memory=spec.memory, gpu=spec.gpu,
                used_cpu=sum(r.spec.cpu for r in live), used_memory=sum(r.spec.memory for r in live),
                used_gpus={g for r in live for g in r.gpus},
            )
            rep = Supervised(spec=spec, gpus=gpus, started_at=utcnow())
            try:
                self._spawn(rep, time.monotonic())
            except (PermanentError, TemporaryError):
                shutil.rmtree(self._workdirs / spec.name, ignore_errors=True)
                raise
            self._reps[spec.name] = rep
            log.info("started replica %s (pid %s, port %s)", spec.name, rep.proc and rep.proc.pid, rep.port)

    def stop_replica(self, name: str, *, grace_s: float) -> None:
        with self._lock:
            rep = self._reps.get(name)
            if rep is None or rep.terminating:
                return
            rep.terminating, rep.ready = True, False
            if rep.proc is None:
                self._remove(rep)
                return
            rep.proc.signal(signal.SIGTERM)
            rep.kill_at = time.time() + max(grace_s, 0.0)
            self._save(rep)

    def observe(self, deployment_id: str) -> list[Replica]:
        with self._lock:
            return sorted(
                (r.view() for r in self._reps.values() if r.spec.deployment_id == deployment_id),
                key=lambda r: r.name,
            )

    def deployments(self) -> set[str]:
        with self._lock:
            return {r.spec.deployment_id for r in self._reps.values()}

    def usage(self, deployment_id: str) -> list[ReplicaUsage]:
        with self._lock:
            targets = [(r.name, r.proc, r.gpus) for r in self._reps.values()
                       if r.spec.deployment_id == deployment_id and r.proc is not None]
        with self._usage_lock:
            return self._measure(targets)

    def _measure(self, targets: list[tuple[str, ReplicaProcess, tuple[int, ...]]]) -> list[ReplicaUsage]:
        result = []
        for name, proc, gpus in targets:
            cpu, memory, pids = 0.0, 0, set()
            for p in proc.tree():
                cached = self._usage_procs.get(p.pid)
                if cached is None or cached != p:  # psutil compares pid and create time
                    self._usage_procs[p.pid] = cached = p
                try:
                    cpu += cached.cpu_percent(None) / 100.0  # since the previous call; 0.0 on the first
                    memory += cached.memory_info().rss
                except psutil.Error:
                    continue
                pids.add(p.pid)
            util, gpu_memory = self._nvml.usage(gpus, pids) if gpus else (None, None)
            result.append(ReplicaUsage(name=name, cpu=cpu, memory=memory, gpu_utilization=util,
                                       gpu_memory=gpu_memory))
        for pid in [pid for pid, p in self._usage_procs.items() if not p.is_running()]:
            self._usage_procs.pop(pid, None)
        return result

    def read_logs(self, deployment_id: str, *, replica: str | None = None, tail: int = 100) -> str:
        return self._logs.read(deployment_id, replica=replica, tail=tail)

    def follow_logs(self, deployment_id: str, *, replica: str | None = None) -> AsyncIterator[str]:
        return self._logs.follow(deployment_id, replica=replica)

    def remove_logs(self, deployment_id: str) -> None:
        self._logs.remove(deployment_id)

    def close(self) -> None:
        """Drain every replica (SIGTERM, then SIGKILL after drain_grace_s) and forget them: no orphans."""
        with self._lock:
            if self._closing.is_set():
                return
            self._closing.set()
        self._thread.join(timeout=10)
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            reps = list(self._reps.values())
            deadline = time.time() + self._settings.drain_grace_s
            for rep in reps:
                if rep.proc is not None and not rep.terminating:
                    rep.proc.signal(signal.SIGTERM)
                rep.kill_at = min(rep.kill_at or deadline, deadline)
        pending = [r for r in reps if r.proc is not None]
        while pending:  # without the lock: observe() keeps answering while replicas drain
            now = time.time()
            for rep in pending:
                if rep.proc is not None and rep.kill_at is not None and now >= rep.kill_at:
                    rep.proc.signal(signal.SIGKILL)
                    rep.kill_at = now + 1.0  # again, should the group have spawned more
            pending = [r for r in pending if r.proc is not None and not r.proc.poll()]
            time.sleep(0.05)
        with self._lock:
            for rep in reps:
                if rep.proc is not None:
                    rep.proc.signal(signal.SIGKILL)  # whatever is left of its process group
                self._remove(rep)
        log.info("local runtime closed: %d replica(s) stopped", len(reps))

    # -- supervision ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closing.wait(self._tick_s):
            try:
                self._tick()
            except Exception:  # the supervisor must outlive any one bad replica
                log.exception("local runtime supervisor tick failed")

    def _tick(self) -> None:
        now = time.monotonic()
        probes: list[tuple[Supervised, ReplicaProcess, int]] = []
        with self._lock:
            for rep in list(self._reps.values()):
                try:
                    self._step(rep, now)
                except Exception:  # one bad replica (a full disk, say) must not stall the others
                    log.exception("supervising replica %s failed", rep.name)
                if (self._reps.get(rep.name) is rep and rep.proc is not None and not rep.terminating
                        and now >= rep.next_probe):
                    probes.append((rep, rep.proc, rep.port))
        if not probes:
            return
        results = list(self._probe_pool.map(lambda p: probe_ready(p[2]), probes))
        now = time.monotonic()
        with self._lock:
            for (rep, proc, _port), ok in zip(probes, results, strict=True):
                if rep.proc is proc and not rep.terminating and self._reps.get(rep.name) is rep:
                    self._probed(rep, ok, now)

    def _step(self, rep: Supervised, now: float) -> None:
        if rep.proc is not None and rep.proc.poll():
            self._exited(rep, now)
        if rep.terminating:
            if rep.proc is None:
                self._remove(rep)
            elif rep.kill_at is not None and time.time() >= rep.kill_at:
                rep.proc.signal(signal.SIGKILL)
                rep.kill_at = time.time() + 1.0
            return
        if rep.proc is None:
            if rep.next_start is not None and now >= rep.next_start:
                self._restart(rep, now)
            return
        self._logs.rotate_if_needed(rep.spec.deployment_id, rep.name)
        if rep.ready and rep.ready_since is not None and now - rep.ready_since >= STABLE_S:
            rep.backoff = 0
        timeout = rep.spec.readiness_timeout_s
        if not rep.ready and not rep.timed_out and now - rep.unready_since > timeout:
            rep.timed_out = True
            rep.failure = ("ReadinessTimeout", self._message(
                rep, f"replica {rep.name} was not ready within {timeout:g} s (GET {READY_PATH} on port "
                     f"{rep.port}); killed, retrying with backoff"))
            rep.proc.signal(signal.SIGKILL)
            log.warning("replica %s: readiness timeout after %g s", rep.name, timeout)

    def _probed(self, rep: Supervised, ok: bool, now: float) -> None:
        if ok:
            if not rep.ready:
                rep.ready, rep.ready_since, rep.failure, rep.crashes = True, now, None, 0
            rep.failed_probes = 0
            rep.next_probe = now + READY_PROBE_EVERY_S
        elif rep.ready:
            rep.failed_probes += 1
            if rep.failed_probes >= UNREADY_AFTER_FAILED_PROBES:
                rep.ready, rep.ready_since, rep.unready_since = False, None, now
            rep.next_probe = now + self._tick_s
        else:
            rep.next_probe = now + self._tick_s

    def _exited(self, rep: Supervised, now: float) -> None:
        proc = rep.proc
        assert proc is not None
        proc.signal(signal.SIGKILL)  # children it left behind in its group
        rep.proc, rep.ready, rep.ready_since = None, False, None
        rep.last_exit = describe_exit(proc.returncode)
        if rep.terminating:
            return
        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(rep.backoff, 16))
        rep.backoff += 1
        rep.next_start = now + delay
        if rep.timed_out:
            rep.timed_out = False
            return
        rep.crashes += 1
        tail = self._logs.tail(rep.spec.deployment_id, rep.name, 200)
        own = tail[max((i for i, line in enumerate(tail) if line.startswith("--- modeldeck:")), default=-1) + 1:]
        retry = f"restarting in {delay:g} s"
        if proc.returncode in (2, None) and any(line.startswith("ModelLoadFailed:") for line in own):
            rep.failure = ("ModelLoadFailed", self._message(
                rep, f"replica {rep.name} could not load model {rep.spec.model_uri} ({rep.last_exit}); {retry}"))
        elif rep.crashes >= CRASHLOOP_AFTER:
            rep.failure = ("CrashLoop", self._message(
                rep, f"replica {rep.name} exited {rep.crashes} times without becoming ready "
                     f"(last: {rep.last_exit}); {retry}"))
        log.warning("replica %s exited (%s); %s", rep.name, rep.last_exit, retry)

    def _message(self, rep: Supervised, text: str) -> str:
        lines = self._logs.tail(rep.spec.deployment_id, rep.name, MESSAGE_LINES)
        if any("MemoryError" in line for line in lines):
            text += f" (its instance type limits it to {human_bytes(rep.spec.memory)} of memory)"
        return text + f"\nlast log lines of {rep.name}:\n" + "\n".join(lines)

    def _restart(self, rep: Supervised, now: float) -> None:
        rep.next_start = None
        try:
            self._spawn(rep, now, restarted=True)
        except (PermanentError, TemporaryError) as e:
            if isinstance(e, PermanentError):
                rep.failure = (e.reason, e.message)
            rep.next_start = now + min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(rep.backoff, 16))
            rep.backoff += 1
            return
        rep.restarts += 1
        self._save(rep)

    def _spawn(self, rep: Supervised, now: float, *, restarted: bool = False) -> None:
        spec = rep.spec
        workdir = self._workdirs / spec.name
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            port = free_port({r.port for r in self._reps.values()})
        except OSError as e:
            raise TemporaryError(f"no free port for replica {spec.name}: {e}", retry_after=1.0) from e
        ctx = CommandContext(port=port, host=HOST, model_uri=spec.model_uri, name=spec.deployment_id,
                             replica=spec.name, workdir=workdir)
        argv = self._images.argv(spec.image, ctx)
        event = f"replica restarted ({rep.last_exit})" if restarted else "replica started"
        self._logs.mark(spec.deployment_id, spec.name, f"{event}: {' '.join(argv)}")
        fd = self._logs.open_for_replica(spec.deployment_id, spec.name)
        try:
            proc = spawn(argv, env=replica_env(os.environ, spec, rep.gpus), cwd=workdir, log_fd=fd,
                         memory=spec.memory)
        except OSError as e:
            message = f"cannot run {argv[0]!r} for image {spec.image}: {e.strerror or e}"
            self._logs.mark(spec.deployment_id, spec.name, message)
            raise PermanentError("ImageNotRunnable", message) from e
        finally:
            os.close(fd)
        rep.proc, rep.port, rep.unready_since = proc, port, now
        rep.failed_probes, rep.next_probe = 0, 0.0
        self._save(rep)

    # -- records and recovery ---------------------------------------------------------------------
    def _save(self, rep: Supervised) -> None:
        self._records.save(rep.name, rep.record())

    def _remove(self, rep: Supervised) -> None:
        self._reps.pop(rep.name, None)
        self._records.delete(rep.name)
        shutil.rmtree(self._workdirs / rep.name, ignore_errors=True)
        live = {r.name for r in self._reps.values() if r.spec.deployment_id == rep.spec.deployment_id}
        self._logs.prune(rep.spec.deployment_id, live)

    def _recover(self) -> None:
        """Adopt the replicas a previous server left running; re-create those that died meanwhile."""
        now = time.monotonic()
        for record in self._records.load():
            try:
                rep, proc = Supervised.from_record(record)
            except (KeyError, TypeError, ValueError):
                # The record holds the deployment's env: name it, never print it.
                log.warning("ignoring an unreadable replica record: %s", record.get("name", "?"))
                continue
            if proc is None and rep.terminating:
                self._remove(rep)
                continue
            rep.proc, rep.unready_since = proc, now
            if proc is None:
                rep.last_exit, rep.next_start = "exit code unknown, it exited while no server watched", now
            elif not rep.terminating:
                rep.ready = probe_ready(rep.port)
                rep.ready_since = now if rep.ready else None
            self._reps[rep.name] = rep
            log.info("recovered replica %s (%s)", rep.name, "adopted" if proc else "to restart")
