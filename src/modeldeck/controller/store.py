"""What the controller reads from and writes to the database: the desired spec in, the status columns out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from modeldeck.controller.state import Decision, Desired, StartFailure, Status, Template
from modeldeck.deployments.tables import Deployment
from modeldeck.instance_types.tables import InstanceType
from modeldeck.runtimes.base import Replica
from modeldeck.secrets.tables import ImagePullSecret

STATUS_COLUMNS = ("status", "reason", "message", "observed_generation", "available_replicas", "replicas_status")


@dataclass(frozen=True)
class Observed:
    """A deployment row as the controller sees it: the desired spec and the status columns before this step."""

    desired: Desired
    previous: Status
    columns: Mapping[str, Any]  # current values of STATUS_COLUMNS, to write only what changed


def load(
    session: Session,
    deployment_id: str,
    *,
    readiness_timeout_s: float,
    start_failures: Mapping[int, StartFailure],
) -> Observed | None:
    row = session.get(Deployment, deployment_id)
    if row is None:
        return None
    itype = session.execute(select(InstanceType).where(InstanceType.name == row.instance_type)).scalar_one_or_none()
    config_error: tuple[str, str] | None = None
    if not row.group.deployments_enabled:
        config_error = ("GroupDisabled", f"model deployment is not enabled for group {row.group.name!r}")
    elif itype is None:
        config_error = ("InstanceTypeNotFound", f"instance type {row.instance_type!r} does not exist")
    elif not itype.is_global and row.group_id not in {g.id for g in itype.groups}:
        config_error = (
            "InstanceTypeNotFound",
            f"instance type {row.instance_type!r} is not available to group {row.group.name!r}",
        )
    elif row.image_pull_secret and session.execute(
        select(ImagePullSecret.id).where(ImagePullSecret.name == row.image_pull_secret)
    ).first() is None:
        config_error = ("ImagePullSecretNotFound", f"image pull secret {row.image_pull_secret!r} does not exist")
    template = Template(
        image=row.image,
        model_uri=row.model_uri or None,
        env={str(k): str(v) for k, v in (row.env or {}).items()},
        cpu=itype.cpu if itype else 0.0,
        memory=itype.memory if itype else 0,
        gpu=itype.gpu if itype else 0,
        image_pull_secret=row.image_pull_secret or None,
        readiness_timeout_s=readiness_timeout_s,
    )
    desired = Desired(
        deployment_id=row.id,
        generation=row.generation,
        replicas=row.replicas,
        stopped=row.stopped,
        template=template,
        config_error=config_error,
        start_failures=start_failures,
    )
    previous = Status(
        status=row.status,
        reason=row.reason,
        message=row.message,
        observed_generation=row.observed_generation,
        available_replicas=row.available_replicas,
    )
    return Observed(desired, previous, {c: getattr(row, c) for c in STATUS_COLUMNS})


def replicas_status(replicas: Sequence[Replica]) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "state": r.state,
            "ready": r.ready,
            "restarts": r.restarts,
            "started_at": r.started_at.isoformat() if r.started_at else None,
            "version": r.version,
        }
        for r in sorted(replicas, key=lambda r: r.name)
    ]


def status_values(decision: Decision, replicas: Sequence[Replica], observed_generation: int) -> dict[str, Any]:
    return {
        "status": decision.status,
        "reason": decision.reason,
        "message": decision.message,
        "observed_generation": observed_generation,
        "available_replicas": decision.available_replicas,
        "replicas_status": replicas_status(replicas),
    }


def changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def write_status(session: Session, deployment_id: str, values: Mapping[str, Any], now: datetime) -> None:
    """Status columns only: the API may be changing the spec columns of the same row right now."""
    values = dict(values)
    if "status" in values:
        values["status_changed_at"] = now
    session.execute(update(Deployment).where(Deployment.id == deployment_id).values(**values))
