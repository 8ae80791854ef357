"""Every status transition, as one pure function of (desired spec, observed replicas, time, previous status).

``decide`` never performs I/O; the reconciler feeds it what it read and carries out what it returns.
Replicas are "new" when they were started from the current pod template (same template hash), so a
replicas-only change scales without restarting anything, and a template change rolls out with surge:
the new replicas start next to the old ones, and old ready replicas are kept only while they are
needed to keep ``replicas`` ready in total.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from modeldeck.runtimes.base import FAILURE_REASONS, Replica

StatusName = Literal["Deploying", "Deployed", "Failed", "Stopping", "Stopped"]

_STATE_RANK = {"ready": 0, "starting": 1, "failed": 2}


@dataclass(frozen=True)
class Template:
    """What shapes a replica; any change here is a rolling update, anything else is not."""

    image: str
    model_uri: str | None
    env: Mapping[str, str]
    cpu: float
    memory: int
    gpu: int
    image_pull_secret: str | None = None
    readiness_timeout_s: float = 900.0  # a platform setting: not part of the hash

    @property
    def hash(self) -> str:
        return template_hash(self)


def template_hash(t: Template) -> str:
    canonical = json.dumps(
        [t.image, t.model_uri, sorted(t.env.items()), float(t.cpu), int(t.memory), int(t.gpu),
         t.image_pull_secret],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StartFailure:
    """start_replica raised PermanentError for ``index``; ``retry_at`` is when to try again."""

    index: int
    template: str
    reason: str
    message: str
    retry_at: datetime
    attempts: int = 1


@dataclass(frozen=True)
class Desired:
    deployment_id: str
    generation: int
    replicas: int
    stopped: bool
    template: Template
    config_error: tuple[str, str] | None = None  # (reason, message): GroupDisabled, InstanceTypeNotFound, ...
    # Observations the reconciler keeps between steps (runtimes forget refused starts).
    start_failures: Mapping[int, StartFailure] = field(default_factory=dict)


@dataclass(frozen=True)
class Status:
    """The status columns as they were before this step."""

    status: str = "Deploying"
    reason: str = "Created"
    message: str = ""
    observed_generation: int = 0
    available_replicas: int = 0


@dataclass(frozen=True)
class Decision:
    status: StatusName
    reason: str
    message: str
    available_replicas: int
    start: list[int] = field(default_factory=list)  # indices to start for the current generation
    stop: list[str] = field(default_factory=list)  # replica names to drain


def is_new(replica: Replica, desired: Desired) -> bool:
    if replica.template is None:  # a runtime that cannot report templates: fall back to generations
        return replica.version == desired.generation
    return replica.template == desired.template.hash


def decide(desired: Desired, replicas: Sequence[Replica], now: datetime, previous: Status) -> Decision:
    live = [r for r in replicas if r.state != "terminating"]
    if desired.stopped:
        if replicas:
            return Decision("Stopping", "Stopping", f"draining {_n(len(replicas), 'replica')}", 0,
                            stop=_names(live))
        return Decision("Stopped", "Stopped", "deployment is stopped", 0)
    if desired.config_error is not None:
        reason, message = desired.config_error
        if replicas:
            message += f"; stopping {_n(len(replicas), 'replica')}"
        return Decision("Failed", reason, message, 0, stop=_names(live))
    return _rollout(desired, live, now, previous)


def _rollout(desired: Desired, live: list[Replica], now: datetime, previous: Status) -> Decision:
    n = desired.replicas
    new = [r for r in live if is_new(r, desired)]
    old = [r for r in live if not is_new(r, desired)]
    stop: list[str] = []

    chosen: dict[int, Replica] = {}
    excess: list[Replica] = []
    for r in sorted(new, key=lambda r: (_STATE_RANK.get(r.state, 3), -r.version, r.name)):
        if r.index < n and r.index not in chosen:
            chosen[r.index] = r
        else:
            excess.append(r)
    stop += _names(sorted(excess, key=lambda r: (r.ready, -r.index)))  # non-ready first, highest index first

    start: list[int] = []
    refused: list[StartFailure] = []
    for index in range(n):
        if index in chosen:
            continue
        failure = desired.start_failures.get(index)
        if failure is not None and failure.template == desired.template.hash:
            refused.append(failure)  # still failed until a start succeeds
            if failure.retry_at > now:
                continue
        start.append(index)

    ready_new = sum(1 for r in chosen.values() if r.ready)
    # Old replicas from a later generation than the spec belong to a deleted namesake: never serve them.
    old_ready = sorted((r for r in old if r.ready and r.version <= desired.generation),
                       key=lambda r: (-r.version, r.index, r.name))
    keep = old_ready[: max(0, n - ready_new)]
    kept = {r.name for r in keep}
    stop += _names(r for r in old if r.name not in kept)
    available = ready_new + len(keep)

    failed = sorted((r for r in chosen.values() if r.state == "failed"), key=lambda r: r.index)
    if failed or refused:
        return _failed(desired, failed, refused, len(keep), available, start, stop)
    if ready_new >= n:
        return Decision("Deployed", "Available", f"{ready_new}/{n} replicas ready", available, start, stop)
    if _still_failing(desired, chosen.values(), previous):
        return Decision("Failed", previous.reason, previous.message, available, start, stop)
    message = f"{ready_new}/{n} replicas ready"
    if keep:
        message += f"; previous version serving on {_n(len(keep), 'replica')}"
    message += f"; rolling out generation {desired.generation}"
    return Decision("Deploying", "Progressing", message, available, start, stop)


def _failed(
    desired: Desired,
    failed: list[Replica],
    refused: list[StartFailure],
    serving_old: int,
    available: int,
    start: list[int],
    stop: list[str],
) -> Decision:
    count = len(failed) + len(refused)
    first_failed = failed[0] if failed else None
    if first_failed is not None and (not refused or first_failed.index < refused[0].index):
        reason = first_failed.reason or "CrashLoop"
        what = f"replica {first_failed.name} failed ({reason})"
        detail = first_failed.message or ""
    else:
        reason, detail = refused[0].reason, refused[0].message
        what = f"replica {refused[0].index} could not be started ({reason}); retrying"
    summary = f"{count}/{desired.replicas} replicas failed: {what}"
    if serving_old:
        summary += f"; previous version still serving on {_n(serving_old, 'replica')}"
    message = f"{summary}\n{detail}" if detail else summary
    return Decision("Failed", reason, message, available, start, stop)


def _still_failing(desired: Desired, chosen: Any, previous: Status) -> bool:
    """A crash-looping replica that the runtime restarts passes through "starting"; keep the failure
    (and its log lines) visible until the replicas are ready, instead of flapping back to Deploying."""
    return (
        previous.status == "Failed"
        and previous.reason in FAILURE_REASONS
        and previous.observed_generation == desired.generation
        and any(r.restarts > 0 and not r.ready for r in chosen)
    )


def _names(replicas: Any) -> list[str]:
    return [r.name for r in replicas]


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
