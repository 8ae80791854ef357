"""Admission: the one place group limits are checked, inside the transaction that writes the spec.

``lock_group`` must be the first write of the transaction. On PostgreSQL the UPDATE takes the
group row lock, so concurrent admissions for one group run one after another and each sees the
others' committed deployments; on SQLite every write transaction already began IMMEDIATE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from modeldeck.deployments.tables import Deployment
from modeldeck.errors import Conflict, GroupDisabled, NotFound, QuotaExceeded
from modeldeck.groups.tables import Group
from modeldeck.instance_types.tables import InstanceType
from modeldeck.quantities import format_memory


@dataclass(frozen=True)
class Usage:
    deployments: int  # not stopped
    cpu: float
    memory: int
    gpu: int


def lock_group(session: Session, group_id: int) -> Group:
    session.execute(
        update(Group).where(Group.id == group_id).values(admission_seq=Group.admission_seq + 1)
    )
    group = session.get(Group, group_id, populate_existing=True)
    if group is None:
        raise NotFound(f"group {group_id} not found")
    return group


def group_usage(session: Session, group_id: int, *, exclude: str | None = None) -> Usage:
    """What the group's running (not stopped) deployments hold: replicas x instance type."""
    query = (
        select(
            func.count(Deployment.id),
            func.coalesce(func.sum(Deployment.replicas * InstanceType.cpu), 0.0),
            func.coalesce(func.sum(Deployment.replicas * InstanceType.memory), 0),
            func.coalesce(func.sum(Deployment.replicas * InstanceType.gpu), 0),
        )
        .select_from(Deployment)
        .outerjoin(InstanceType, InstanceType.name == Deployment.instance_type)
        .where(Deployment.group_id == group_id, Deployment.stopped.is_(False))
    )
    if exclude is not None:
        query = query.where(Deployment.id != exclude)
    count, cpu, memory, gpu = session.execute(query).one()
    return Usage(deployments=int(count), cpu=float(cpu), memory=int(memory), gpu=int(gpu))


def ensure_unused(
    session: Session, *, column: InstrumentedAttribute[str | None], value: str, what: str, remedy: str
) -> None:
    """Refuse to delete what a running (not stopped) deployment refers to in ``column``."""
    in_use = (
        session.scalar(select(func.count(Deployment.id)).where(column == value, Deployment.stopped.is_(False)))
        or 0
    )
    if in_use:
        raise Conflict(
            f"{what} {value!r} is used by {in_use} running deployment{'s' if in_use != 1 else ''}; {remedy}"
        )


def admit(
    session: Session,
    *,
    group: Group,
    instance_type: InstanceType,
    replicas: int,
    deployment_id: str | None = None,
) -> None:
    """Raise unless the group may run ``replicas`` x ``instance_type`` more (excluding ``deployment_id``).

    Call after ``lock_group`` for create, update of a running deployment, start and rollback; never
    for stop.
    """
    if not group.deployments_enabled:
        raise GroupDisabled(f"model deployment is not enabled for group {group.name!r}")
    usage = group_usage(session, group.id, exclude=deployment_id)
    if group.max_deployments is not None and usage.deployments + 1 > group.max_deployments:
        raise QuotaExceeded(
            f"group {group.name!r} already runs {usage.deployments} of its maximum "
            f"{group.max_deployments} deployments (stopped deployments do not count)"
        )
    wanted: tuple[tuple[str, float, float | None, Callable[[float], str]], ...] = (
        ("cpu", usage.cpu + replicas * instance_type.cpu, group.quota_cpu, _cores),
        ("memory", usage.memory + replicas * instance_type.memory, group.quota_memory, _bytes),
        ("gpu", usage.gpu + replicas * instance_type.gpu, group.quota_gpu, _cores),
    )
    for resource, total, limit, fmt in wanted:
        if limit is not None and total > limit + 1e-9:
            raise QuotaExceeded(
                f"group {group.name!r} {resource} quota exceeded: {replicas} x {instance_type.name} "
                f"would bring the group to {fmt(total)} of {fmt(limit)}"
            )


def _cores(value: float) -> str:
    return f"{value:g}"


def _bytes(value: float) -> str:
    return format_memory(int(value))
