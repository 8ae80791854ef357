"""Groups: who may deploy, how much, and who belongs."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modeldeck.auth.deps import Caller
from modeldeck.auth.schemas import GROUP_NAME_PATTERN, is_name
from modeldeck.auth.tables import User
from modeldeck.deployments.quota import group_usage
from modeldeck.deployments.tables import Deployment
from modeldeck.errors import Conflict, NotFound, ValidationFailed
from modeldeck.groups.schemas import GroupCreate, GroupOut, GroupUpdate, Quota, QuotaOut, UsageOut
from modeldeck.groups.tables import Group
from modeldeck.quantities import format_memory, parse_memory


def out(session: Session, group: Group) -> GroupOut:
    usage = group_usage(session, group.id)
    return GroupOut(
        name=group.name,
        display_name=group.display_name,
        deployments_enabled=group.deployments_enabled,
        max_deployments=group.max_deployments,
        quota=QuotaOut(
            cpu=group.quota_cpu,
            memory=None if group.quota_memory is None else format_memory(group.quota_memory),
            gpu=group.quota_gpu,
        ),
        members=sorted(u.username for u in group.members),
        usage=UsageOut(
            deployments=usage.deployments,
            cpu=round(usage.cpu, 6),
            memory=format_memory(usage.memory),
            gpu=usage.gpu,
        ),
        created_at=group.created_at,
    )


def find(session: Session, name: str, *, for_update: bool = False) -> Group | None:
    if not is_name(GROUP_NAME_PATTERN, name):
        return None
    query = select(Group).where(Group.name == name)
    return session.scalar(query.with_for_update() if for_update else query)


def visible(session: Session, *, caller: Caller, name: str) -> Group:
    """The group if the caller is an admin or a member; otherwise NOT_FOUND, so existence does not leak."""
    group = find(session, name)
    if group is None or not caller.can_access_group(group.id):
        raise NotFound(f"group {name!r} not found")
    return group


def named(session: Session, names: Iterable[str]) -> list[Group]:
    """The groups with these names, or 422 naming the unknown ones."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    found = list(session.scalars(select(Group).where(Group.name.in_(wanted)).order_by(Group.name)))
    missing = sorted(set(wanted) - {g.name for g in found})
    if missing:
        raise ValidationFailed(f"unknown group(s): {', '.join(missing)}")
    return found


def _users_named(session: Session, names: Iterable[str]) -> list[User]:
    wanted = sorted(set(names))
    if not wanted:
        return []
    found = list(session.scalars(select(User).where(User.username.in_(wanted))))
    missing = sorted(set(wanted) - {u.username for u in found})
    if missing:
        raise ValidationFailed(f"unknown user(s): {', '.join(missing)}")
    return found


def _apply_quota(group: Group, quota: Quota) -> None:
    sent = quota.model_fields_set
    if "cpu" in sent:
        group.quota_cpu = quota.cpu
    if "memory" in sent:
        group.quota_memory = None if quota.memory is None else parse_memory(quota.memory)
    if "gpu" in sent:
        group.quota_gpu = quota.gpu


def list_groups(session: Session, *, caller: Caller) -> list[GroupOut]:
    query = select(Group).order_by(Group.name)
    if not caller.is_admin:
        query = query.where(Group.id.in_(caller.group_ids))
    return [out(session, g) for g in session.scalars(query)]


def get_group(session: Session, *, caller: Caller, name: str) -> GroupOut:
    return out(session, visible(session, caller=caller, name=name))


def create_group(session: Session, *, body: GroupCreate) -> GroupOut:
    if find(session, body.name) is not None:
        raise Conflict(f"group {body.name!r} already exists")
    group = Group(
        name=body.name,
        display_name=body.display_name,
        deployments_enabled=body.deployments_enabled,
        max_deployments=body.max_deployments,
    )
    _apply_quota(group, body.quota)
    group.members = _users_named(session, body.members)
    session.add(group)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(f"group {body.name!r} already exists") from exc
    return out(session, group)


def update_group(session: Session, *, name: str, body: GroupUpdate) -> GroupOut:
    group = find(session, name)
    if group is None:
        raise NotFound(f"group {name!r} not found")
    sent = body.model_fields_set
    if body.display_name is not None:
        group.display_name = body.display_name
    if body.deployments_enabled is not None:
        group.deployments_enabled = body.deployments_enabled
    if "max_deployments" in sent:
        group.max_deployments = body.max_deployments
    if body.quota is not None:
        _apply_quota(group, body.quota)
    if body.members is not None:
        group.members = _users_named(session, body.members)
    session.flush()
    return out(session, group)


def delete_group(session: Session, *, name: str) -> None:
    # The row lock orders this after any admission in flight for the group (they update the row first).
    group = find(session, name, for_update=True)
    if group is None:
        raise NotFound(f"group {name!r} not found")
    count = session.scalar(select(func.count(Deployment.id)).where(Deployment.group_id == group.id)) or 0
    if count:
        # Deliberately no cascade: deleting running endpoints must be an explicit act (docs/api.md).
        raise Conflict(f"group {name!r} still has {count} deployment{'s' if count != 1 else ''}; delete them first")
    session.delete(group)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"group {name!r} still has deployments; delete them first") from exc
