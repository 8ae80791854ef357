"""Instance types: the sizes a replica can have, global or reserved to some groups."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modeldeck.auth.deps import Caller
from modeldeck.auth.schemas import is_name
from modeldeck.deployments import quota
from modeldeck.deployments.tables import Deployment
from modeldeck.errors import Conflict, NotFound, ValidationFailed
from modeldeck.groups import service as groups
from modeldeck.groups.tables import Group
from modeldeck.instance_types.schemas import (
    INSTANCE_TYPE_NAME_PATTERN,
    InstanceTypeCreate,
    InstanceTypeOut,
    InstanceTypeUpdate,
)
from modeldeck.instance_types.tables import InstanceType
from modeldeck.quantities import format_memory, parse_memory


def out(it: InstanceType, *, caller: Caller) -> InstanceTypeOut:
    # Non-admins only learn about their own groups, not which other groups exist.
    names = sorted(g.name for g in it.groups if caller.is_admin or g.id in caller.group_ids)
    return InstanceTypeOut.model_validate(
        {
            "name": it.name,
            "display_name": it.display_name,
            "description": it.description,
            "cpu": it.cpu,
            "memory": format_memory(it.memory),
            "gpu": it.gpu,
            "node_selector": dict(it.node_selector),
            "tolerations": list(it.tolerations),
            "global": it.is_global,
            "groups": names,
            "created_at": it.created_at,
        }
    )


def _usable_by(group_ids: frozenset[int] | set[int]) -> ColumnElement[bool]:
    if not group_ids:
        return InstanceType.is_global.is_(True)
    return or_(InstanceType.is_global.is_(True), InstanceType.groups.any(Group.id.in_(group_ids)))


def find(session: Session, name: str, *, for_update: bool = False, shared: bool = False) -> InstanceType | None:
    if not is_name(INSTANCE_TYPE_NAME_PATTERN, name):
        return None
    query = select(InstanceType).where(InstanceType.name == name)
    if for_update or shared:
        query = query.with_for_update(read=shared)
    return session.scalar(query)


def list_instance_types(session: Session, *, caller: Caller, group: str | None = None) -> list[InstanceTypeOut]:
    """Everything for admins; otherwise what the caller's groups (or the one group asked for) may use."""
    query = select(InstanceType).order_by(InstanceType.name)
    if group is not None:
        query = query.where(_usable_by({groups.visible(session, caller=caller, name=group).id}))
    elif not caller.is_admin:
        query = query.where(_usable_by(caller.group_ids))
    return [out(it, caller=caller) for it in session.scalars(query)]


def get_instance_type(session: Session, *, caller: Caller, name: str) -> InstanceTypeOut:
    it = find(session, name)
    if it is None or not (caller.is_admin or it.is_global or any(g.id in caller.group_ids for g in it.groups)):
        raise NotFound(f"instance type {name!r} not found")
    return out(it, caller=caller)


def _check_scope(it: InstanceType) -> None:
    if it.is_global and it.groups:
        raise ValidationFailed("a global instance type is usable by every group: send groups: [] with global: true")


def create_instance_type(session: Session, *, caller: Caller, body: InstanceTypeCreate) -> InstanceTypeOut:
    if find(session, body.name) is not None:
        raise Conflict(f"instance type {body.name!r} already exists")
    it = InstanceType(
        name=body.name,
        display_name=body.display_name,
        description=body.description,
        cpu=body.cpu,
        memory=parse_memory(body.memory),
        gpu=body.gpu,
        node_selector=dict(body.node_selector),
        tolerations=[t.model_dump(exclude_none=True) for t in body.tolerations],
        is_global=body.is_global,
    )
    it.groups = groups.named(session, body.groups)
    _check_scope(it)
    session.add(it)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(f"instance type {body.name!r} already exists") from exc
    return out(it, caller=caller)


def update_instance_type(session: Session, *, caller: Caller, name: str, body: InstanceTypeUpdate) -> InstanceTypeOut:
    it = find(session, name)
    if it is None:
        raise NotFound(f"instance type {name!r} not found")
    for field in ("display_name", "description", "cpu", "gpu", "is_global"):
        value = getattr(body, field)
        if value is not None:
            setattr(it, field, value)
    if body.memory is not None:
        it.memory = parse_memory(body.memory)
    if body.node_selector is not None:
        it.node_selector = dict(body.node_selector)
    if body.tolerations is not None:
        it.tolerations = [t.model_dump(exclude_none=True) for t in body.tolerations]
    if body.groups is not None:
        it.groups = groups.named(session, body.groups)
    _check_scope(it)
    session.flush()
    return out(it, caller=caller)


def delete_instance_type(session: Session, *, name: str) -> None:
    # FOR UPDATE waits for deployment writes holding the type FOR SHARE (usable_instance_type).
    it = find(session, name, for_update=True)
    if it is None:
        raise NotFound(f"instance type {name!r} not found")
    quota.ensure_unused(
        session, column=Deployment.instance_type, value=name, what="instance type",
        remedy="stop them or move them to another instance type first",
    )
    session.delete(it)


def usable_instance_type(session: Session, *, name: str, group_id: int) -> InstanceType:
    """The instance type a deployment of ``group_id`` may run on, or 422 naming those it may use.

    Called by the deployments service inside its write transaction; the shared row lock keeps the
    type from being deleted until that transaction ends.
    """
    it = find(session, name, shared=True)
    if it is not None and (it.is_global or any(g.id == group_id for g in it.groups)):
        return it
    group = session.get(Group, group_id)
    group_name = group.name if group is not None else str(group_id)
    usable = list(session.scalars(select(InstanceType.name).where(_usable_by({group_id})).order_by(InstanceType.name)))
    choices = f"it may use: {', '.join(usable)}" if usable else "no instance type is available to it yet"
    shown = name if len(name) <= 64 else name[:64] + "…"
    raise ValidationFailed(f"instance type {shown!r} is not available to group {group_name!r}; {choices}")
