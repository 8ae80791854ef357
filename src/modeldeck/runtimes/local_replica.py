"""One supervised replica: its state, the record kept on disk for recovery, and what observe() shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modeldeck.runtimes.base import Replica, ReplicaSpec, ReplicaState
from modeldeck.runtimes.local_process import ReplicaProcess, spec_from_dict, spec_to_dict

HOST = "127.0.0.1"


@dataclass
class Supervised:
    """Every field is read and written under LocalRuntime's lock."""

    spec: ReplicaSpec
    gpus: tuple[int, ...]
    started_at: datetime
    port: int = 0
    proc: ReplicaProcess | None = None
    unready_since: float = 0.0  # monotonic: spawn, or the moment a ready replica stopped answering
    restarts: int = 0
    crashes: int = 0  # exits since it was last ready
    backoff: int = 0  # exponent of the next restart delay
    next_start: float | None = None  # monotonic; set while it waits to be restarted
    last_exit: str = ""
    ready: bool = False
    ready_since: float | None = None
    failed_probes: int = 0
    next_probe: float = 0.0
    failure: tuple[str, str] | None = None  # (reason, message) until it becomes ready
    timed_out: bool = False  # killed for ReadinessTimeout: its exit is no crash
    terminating: bool = False
    kill_at: float | None = None  # wall clock, persisted: SIGKILL after the drain grace

    @property
    def name(self) -> str:
        return self.spec.name

    def record(self) -> dict[str, Any]:
        proc = self.proc
        return {
            "spec": spec_to_dict(self.spec), "gpus": list(self.gpus), "port": self.port,
            "pid": proc.pid if proc is not None else None,
            "create_time": proc.create_time if proc is not None else None,
            "started_at": self.started_at.isoformat(), "restarts": self.restarts,
            "terminating": self.terminating, "kill_at": self.kill_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> tuple[Supervised, ReplicaProcess | None]:
        """The replica and its process if that still runs; raises KeyError/TypeError/ValueError."""
        rep = cls(
            spec=spec_from_dict(record["spec"]), gpus=tuple(int(g) for g in record["gpus"]),
            port=int(record["port"]), started_at=datetime.fromisoformat(record["started_at"]),
            restarts=int(record["restarts"]), terminating=bool(record["terminating"]),
            kill_at=None if record["kill_at"] is None else float(record["kill_at"]),
        )
        pid, created = record.get("pid"), record.get("create_time")
        return rep, ReplicaProcess.adopt(int(pid), float(created)) if pid and created else None

    def view(self) -> Replica:
        state: ReplicaState = "starting"
        reason: str | None = None
        message: str | None = None
        if self.terminating:
            state = "terminating"
        elif self.ready:
            state = "ready"
        elif self.failure is not None:
            state = "failed"
            reason, message = self.failure
        elif self.proc is None and self.last_exit:
            message = f"restarting after {self.last_exit}"
        return Replica(
            name=self.name, deployment_id=self.spec.deployment_id, version=self.spec.version,
            index=self.spec.index, state=state, restarts=self.restarts, started_at=self.started_at,
            address=f"{HOST}:{self.port}" if state == "ready" else None, reason=reason, message=message,
            template=self.spec.template or None,
        )
