"""The contract between the controller and whatever runs replicas.

The controller asks for replicas by (deployment, version, index) and observes what exists; a
runtime never decides status and never touches the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

ReplicaState = Literal["starting", "ready", "failed", "terminating"]

# Reasons a runtime may attach to a failed replica; the controller copies them to the deployment.
FAILURE_REASONS = (
    "ImageNotRunnable",
    "ImagePullFailed",
    "ModelLoadFailed",
    "CrashLoop",
    "ReadinessTimeout",
    "Unschedulable",
)


class TemporaryError(Exception):
    """Try again later (the controller backs off for ``retry_after`` seconds)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Retrying the same request cannot succeed; ``reason`` is one of FAILURE_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ReplicaSpec:
    deployment_id: str
    version: int  # the deployment generation this replica serves
    index: int
    image: str
    model_uri: str | None
    env: Mapping[str, str]
    cpu: float
    memory: int  # bytes
    gpu: int
    image_pull_secret: str | None = None
    readiness_timeout_s: float = 900.0
    # Hash of what shapes the replica (image, model, env, resources, pull secret), computed by the
    # controller; a runtime must report it back on Replica.template (across its own restarts too).
    template: str = ""

    @property
    def name(self) -> str:
        return replica_name(self.deployment_id, self.version, self.index)


def replica_name(deployment_id: str, version: int, index: int) -> str:
    return f"{deployment_id}-g{version}-r{index}"


@dataclass(frozen=True)
class Replica:
    """What a runtime observes of one replica."""

    name: str
    deployment_id: str
    version: int
    index: int
    state: ReplicaState
    restarts: int = 0
    started_at: datetime | None = None
    address: str | None = None  # "host:port" the gateway proxies to, when ready
    reason: str | None = None  # set when state == "failed" (one of FAILURE_REASONS)
    message: str | None = None  # human text, e.g. the last log lines of a failing replica
    template: str | None = None  # ReplicaSpec.template it was started from; None if unknown

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@dataclass(frozen=True)
class ReplicaUsage:
    name: str
    cpu: float  # cores in use
    memory: int  # bytes resident
    gpu_utilization: float | None = None  # 0..1
    gpu_memory: int | None = None  # bytes


@dataclass
class Capacity:
    cpu: float
    memory: int
    gpus: list[int] = field(default_factory=list)


@runtime_checkable
class Runtime(Protocol):
    """Side effects live here and nowhere else. Calls must not block for long (start is async-ish:
    it returns once the replica was launched; readiness is seen through ``observe``)."""

    def validate_image(self, image: str) -> str | None:
        """None when this runtime can run ``image``; otherwise a message naming what it can run."""
        ...

    def start_replica(self, spec: ReplicaSpec) -> None:
        """Launch a replica. Raises TemporaryError or PermanentError."""
        ...

    def stop_replica(self, name: str, *, grace_s: float) -> None:
        """Begin draining: SIGTERM now, kill after ``grace_s``. Idempotent."""
        ...

    def observe(self, deployment_id: str) -> list[Replica]:
        """Every replica of a deployment that still exists (terminating ones included)."""
        ...

    def deployments(self) -> set[str]:
        """IDs of every deployment that has at least one replica (for recovery and garbage collection)."""
        ...

    def usage(self, deployment_id: str) -> list[ReplicaUsage]:
        ...

    def read_logs(self, deployment_id: str, *, replica: str | None = None, tail: int = 100) -> str:
        """Last ``tail`` lines; replica None merges all replicas with a ``[replica]`` prefix."""
        ...

    def follow_logs(self, deployment_id: str, *, replica: str | None = None) -> AsyncIterator[str]:
        ...

    def remove_logs(self, deployment_id: str) -> None:
        ...

    def close(self) -> None:
        """Stop every replica this runtime started (server shutdown: no orphans)."""
        ...
