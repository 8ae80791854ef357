"""An in-memory runtime for tests of logic: replicas are records that tests switch between states.

Behaviour knobs (per deployment, or for every deployment when ``deployment_id`` is None):
``set_ready(False)`` keeps new replicas starting; ``fail_start(reason, message)`` makes
``start_replica`` raise PermanentError; ``crash(...)`` turns running replicas failed;
``recover(...)`` makes them ready again. ``auto_ready`` decides whether new replicas come up ready.
``hold_termination(True)`` keeps stopped replicas "terminating" until ``finish_termination()``
(a real runtime drains for a while); by default a stopped replica vanishes at once.
``refuse_start_temporarily(retry_after)`` makes ``start_replica`` raise TemporaryError;
``mark_ready(name)`` turns one starting replica ready.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from modeldeck.db import utcnow
from modeldeck.runtimes.base import PermanentError, Replica, ReplicaSpec, ReplicaUsage, TemporaryError


def fake_address(name: str) -> str:
    """A loopback address nothing listens on: connecting fails at once (no DNS, no timeout)."""
    digest = hashlib.sha256(name.encode()).digest()
    return f"127.{digest[0]}.{digest[1]}.{digest[2] or 1}:9"


@dataclass
class _Behaviour:
    auto_ready: bool = True
    fail_reason: str | None = None
    fail_message: str = ""
    busy_retry_after: float | None = None


class FakeRuntime:
    def __init__(self, *, auto_ready: bool = True, runnable_images: tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._replicas: dict[str, Replica] = {}
        self._specs: dict[str, ReplicaSpec] = {}
        self._logs: dict[str, list[str]] = {}
        self._default = _Behaviour(auto_ready=auto_ready)
        self._per_deployment: dict[str, _Behaviour] = {}
        self._hold_termination = False
        self.runnable_images = runnable_images  # empty: everything is runnable
        self.started: list[str] = []  # every replica name ever started, in order
        self.stopped: list[str] = []
        self.closed = False

    # -- switches used by tests ---------------------------------------------------------------
    def _behaviour(self, deployment_id: str) -> _Behaviour:
        return self._per_deployment.get(deployment_id, self._default)

    def set_ready(self, ready: bool, deployment_id: str | None = None) -> None:
        with self._lock:
            self._target(deployment_id).auto_ready = ready
            if ready:
                for name, rep in self._replicas.items():
                    if rep.state == "starting" and deployment_id in (None, rep.deployment_id):
                        self._replicas[name] = replace(rep, state="ready", address=fake_address(name))

    def mark_ready(self, name: str) -> None:
        with self._lock:
            rep = self._replicas[name]
            if rep.state == "starting":
                self._replicas[name] = replace(rep, state="ready", address=fake_address(name))

    def fail_start(self, reason: str | None, message: str = "", deployment_id: str | None = None) -> None:
        with self._lock:
            target = self._target(deployment_id)
            target.fail_reason, target.fail_message = reason, message

    def refuse_start_temporarily(self, retry_after: float | None, deployment_id: str | None = None) -> None:
        """start_replica raises TemporaryError(retry_after) until called again with None."""
        with self._lock:
            self._target(deployment_id).busy_retry_after = retry_after

    def crash(
        self,
        deployment_id: str,
        *,
        reason: str = "CrashLoop",
        message: str = "replica crashed",
        replica: str | None = None,
    ) -> None:
        with self._lock:
            for name, rep in self._replicas.items():
                if rep.deployment_id == deployment_id and rep.state != "terminating" and replica in (None, name):
                    self._replicas[name] = replace(
                        rep, state="failed", reason=reason, message=message, restarts=rep.restarts + 1,
                        address=None,
                    )
                    self._logs.setdefault(name, []).append(message)

    def recover(self, deployment_id: str) -> None:
        with self._lock:
            for name, rep in self._replicas.items():
                if rep.deployment_id == deployment_id and rep.state == "failed":
                    self._replicas[name] = replace(rep, state="ready", reason=None, message=None,
                                                   address=fake_address(name))

    def hold_termination(self, hold: bool) -> None:
        with self._lock:
            self._hold_termination = hold

    def finish_termination(self, deployment_id: str | None = None) -> None:
        """Terminating replicas vanish (a real runtime does this after draining)."""
        with self._lock:
            for name in [n for n, r in self._replicas.items()
                         if r.state == "terminating" and deployment_id in (None, r.deployment_id)]:
                del self._replicas[name]

    def _target(self, deployment_id: str | None) -> _Behaviour:
        if deployment_id is None:
            return self._default
        return self._per_deployment.setdefault(deployment_id, replace(self._default))

    # -- Runtime protocol ---------------------------------------------------------------------
    def validate_image(self, image: str) -> str | None:
        if not self.runnable_images or image.split(":")[0] in self.runnable_images:
            return None
        return f"the fake runtime runs only: {', '.join(self.runnable_images)}"

    def start_replica(self, spec: ReplicaSpec) -> None:
        with self._lock:
            behaviour = self._behaviour(spec.deployment_id)
            if behaviour.fail_reason:
                raise PermanentError(behaviour.fail_reason, behaviour.fail_message)
            if behaviour.busy_retry_after is not None:
                raise TemporaryError("the fake runtime is busy", behaviour.busy_retry_after)
            if spec.name in self._replicas and self._replicas[spec.name].state != "terminating":
                return
            ready = behaviour.auto_ready
            self._replicas[spec.name] = Replica(
                name=spec.name, deployment_id=spec.deployment_id, version=spec.version, index=spec.index,
                state="ready" if ready else "starting", started_at=utcnow(),
                address=fake_address(spec.name) if ready else None, template=spec.template,
            )
            self._specs[spec.name] = spec
            self._logs.setdefault(spec.name, []).append(f"started {spec.name} image={spec.image}")
            self.started.append(spec.name)

    def stop_replica(self, name: str, *, grace_s: float) -> None:
        with self._lock:
            rep = self._replicas.get(name)
            if rep is None:
                return
            if rep.state != "terminating":
                self.stopped.append(name)
            if self._hold_termination:
                self._replicas[name] = replace(rep, state="terminating", address=None)
            else:
                del self._replicas[name]

    def observe(self, deployment_id: str) -> list[Replica]:
        with self._lock:
            return sorted(
                (r for r in self._replicas.values() if r.deployment_id == deployment_id), key=lambda r: r.name
            )

    def deployments(self) -> set[str]:
        with self._lock:
            return {r.deployment_id for r in self._replicas.values()}

    def spec_of(self, name: str) -> ReplicaSpec:
        return self._specs[name]

    def usage(self, deployment_id: str) -> list[ReplicaUsage]:
        return [ReplicaUsage(name=r.name, cpu=0.0, memory=0) for r in self.observe(deployment_id)]

    def read_logs(self, deployment_id: str, *, replica: str | None = None, tail: int = 100) -> str:
        with self._lock:
            names = sorted(n for n in self._logs if n.startswith(deployment_id + "-g"))
            if replica is not None:
                lines = self._logs.get(replica, []) if replica in names else []
            else:
                lines = [f"[{n}] {line}" for n in names for line in self._logs[n]]
        return "".join(line + "\n" for line in lines[-tail:] if tail > 0)

    async def follow_logs(self, deployment_id: str, *, replica: str | None = None) -> AsyncIterator[str]:
        for line in self.read_logs(deployment_id, replica=replica, tail=10_000).splitlines(keepends=True):
            yield line

    def remove_logs(self, deployment_id: str) -> None:
        with self._lock:
            for name in [n for n in self._logs if n.startswith(deployment_id + "-g")]:
                del self._logs[name]

    def close(self) -> None:
        with self._lock:
            self._replicas.clear()
            self.closed = True
