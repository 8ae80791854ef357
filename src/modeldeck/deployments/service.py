"""Deployment spec changes: validate, admit (deployments/quota.py), write the spec and its history.

Every function runs inside the caller's transaction and never touches a runtime's mutating methods;
the router wakes the controller after the commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, lazyload, selectinload

from modeldeck.auth.deps import Caller
from modeldeck.context import Platform
from modeldeck.db import utcnow
from modeldeck.deployments import quota
from modeldeck.deployments.ids import generate_id, id_problem
from modeldeck.deployments.schemas import IMMUTABLE_FIELDS, DeploymentCreate, DeploymentUpdate
from modeldeck.deployments.tables import SPEC_FIELDS, Deployment, DeploymentVersion
from modeldeck.errors import Conflict, Forbidden, NotFound, ValidationFailed
from modeldeck.groups.tables import Group
from modeldeck.instance_types.service import usable_instance_type
from modeldeck.secrets.tables import ImagePullSecret

_ID_ATTEMPTS = 5


def _query() -> Select[Deployment]:
    # Group members are never needed here: keep the group's selectin relationships from loading.
    return select(Deployment).options(
        joinedload(Deployment.group, innerjoin=True).lazyload(Group.members),
        selectinload(Deployment.clients),
    )


def load(session: Session, *, caller: Caller, deployment_id: str, for_update: bool = False) -> Deployment:
    """The deployment if the caller may see it; 404 otherwise (never 403: existence is not leaked)."""
    missing = NotFound(f"deployment {deployment_id!r} not found")
    if id_problem(deployment_id):
        raise missing
    query = _query().where(Deployment.id == deployment_id)
    if for_update:
        query = query.with_for_update(of=Deployment).execution_options(populate_existing=True)
    dep = session.scalars(query).one_or_none()
    if dep is None or not caller.can_access_group(dep.group_id):
        raise missing
    return dep


def locked(
    session: Session, *, caller: Caller, deployment_id: str, admission: bool
) -> tuple[Deployment, Group | None]:
    """Lock order everywhere: group row (admissions only), then deployment row."""
    dep = load(session, caller=caller, deployment_id=deployment_id)
    group = quota.lock_group(session, dep.group_id) if admission else None
    return load(session, caller=caller, deployment_id=deployment_id, for_update=True), group


def _check_changes(
    session: Session, *, platform: Platform, group_id: int, changes: dict[str, Any], admitting: bool
) -> None:
    """Validate the spec fields that change (unchanged ones were valid when written).

    The instance type is left to admission when there is one (it needs the row anyway)."""
    if "instance_type" in changes and not admitting:
        usable_instance_type(session, name=changes["instance_type"], group_id=group_id)
    if "image" in changes and (problem := platform.runtime.validate_image(changes["image"])):
        raise ValidationFailed(problem, code="IMAGE_NOT_RUNNABLE")
    secret = changes.get("image_pull_secret")
    if secret is not None and session.scalar(
        select(ImagePullSecret.id).where(ImagePullSecret.name == secret)
    ) is None:
        raise ValidationFailed(f"image pull secret {secret!r} does not exist")
    uri = changes.get("model_uri")
    if uri and platform.settings.runtime == "local" and uri.lower().startswith("file:"):
        _check_model_root(uri, platform.settings.model_roots)


def _check_model_root(uri: str, roots: tuple[Path, ...]) -> None:
    try:
        path = Path(unquote(urlsplit(uri).path)).resolve()
    except (ValueError, OSError) as exc:
        raise ValidationFailed(f"invalid file model_uri: {exc}") from exc
    if not any(path.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots) or "none configured (set MODELDECK_MODEL_ROOTS)"
        raise ValidationFailed(f"file model_uri must be under a model root: {allowed}")


def _admit(session: Session, *, group: Group, instance_type: str, replicas: int, exclude: str | None) -> None:
    it = usable_instance_type(session, name=instance_type, group_id=group.id)
    quota.admit(session, group=group, instance_type=it, replicas=replicas, deployment_id=exclude)


def record(
    session: Session,
    dep: Deployment,
    *,
    platform: Platform,
    caller: Caller,
    action: str,
    message: str,
) -> None:
    """A spec change: new history version, generation bump, last modifier; prune old versions."""
    if action == "create":
        now = dep.created_at
    else:
        now = utcnow()
        dep.version += 1
        dep.generation += 1
        dep.updated_at, dep.updated_by = now, caller.username
    session.add(
        DeploymentVersion(
            deployment_id=dep.id,
            version=dep.version,
            action=action,
            message=message,
            spec=dep.spec_snapshot(),
            created_by=caller.username,
            created_at=now,
        )
    )
    limit = max(1, platform.settings.history_limit)
    if dep.version > limit:
        session.execute(
            delete(DeploymentVersion)
            .where(DeploymentVersion.deployment_id == dep.id, DeploymentVersion.version <= dep.version - limit)
            .execution_options(synchronize_session=False)
        )


def create(session: Session, *, platform: Platform, caller: Caller, body: DeploymentCreate) -> Deployment:
    group = session.scalars(
        select(Group).where(Group.name == body.group).options(lazyload(Group.members))
    ).one_or_none()
    if group is None or not caller.can_access_group(group.id):
        if caller.is_admin:
            raise ValidationFailed(f"group {body.group!r} does not exist")
        raise Forbidden(f"you are not a member of group {body.group!r}")
    spec: dict[str, Any] = {
        "instance_type": body.instance_type,
        "replicas": body.replicas,
        "image": body.image,
        "model_uri": body.model_uri or None,
        "image_pull_secret": body.image_pull_secret or None,
        "description": body.description or "",
        "metadata": dict(body.metadata),
        "env": dict(body.env),
        "endpoint_access": body.endpoint_access,
    }
    _check_changes(session, platform=platform, group_id=group.id, changes=spec, admitting=True)
    if body.id and _exists(session, body.id):
        raise Conflict(f"deployment ID {body.id!r} is already in use")
    deployment_id = body.id or _free_id(session, body.name)

    group = quota.lock_group(session, group.id)
    _admit(session, group=group, instance_type=body.instance_type, replicas=body.replicas, exclude=None)

    now = utcnow()
    dep = Deployment(
        id=deployment_id,
        name=body.name,
        group=group,
        stopped=False,
        version=1,
        generation=1,
        created_by=caller.username,
        updated_by=caller.username,
        created_at=now,
        updated_at=now,
        status="Deploying",
        reason="Created",
        message="Deployment created; waiting for replicas",
        observed_generation=0,
        available_replicas=0,
        replicas_status=[],
        status_changed_at=now,
        clients=[],
    )
    _assign(dep, spec)
    session.add(dep)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create took the ID first
        raise Conflict(f"deployment ID {deployment_id!r} is already in use") from exc
    record(session, dep, platform=platform, caller=caller, action="create",
           message=body.update_message or "Deployment created")
    return dep


def _free_id(session: Session, name: str) -> str:
    for _ in range(_ID_ATTEMPTS):
        candidate = generate_id(name)
        if not _exists(session, candidate):
            return candidate
    raise Conflict("could not generate a free deployment ID; pass one explicitly")


def _exists(session: Session, deployment_id: str) -> bool:
    return session.scalar(select(Deployment.id).where(Deployment.id == deployment_id)) is not None


def _current(dep: Deployment) -> dict[str, Any]:
    return {f: getattr(dep, "metadata_" if f == "metadata" else f) for f in SPEC_FIELDS}


def _assign(dep: Deployment, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        setattr(dep, "metadata_" if name == "metadata" else name, value)


def _requested(body: DeploymentUpdate) -> dict[str, Any]:
    wanted: dict[str, Any] = {}
    for name in body.model_fields_set & set(SPEC_FIELDS):
        value = getattr(body, name)
        if name in ("model_uri", "image_pull_secret"):
            value = value or None
        elif name == "description":
            value = value or ""
        elif name in ("metadata", "env"):
            value = dict(value)
        wanted[name] = value
    return wanted


def _apply(
    session: Session,
    dep: Deployment,
    group: Group | None,
    *,
    platform: Platform,
    caller: Caller,
    wanted: dict[str, Any],
    action: str,
    message: str,
) -> bool:
    """Write the fields of ``wanted`` that differ; False (and nothing written) when none does."""
    current = _current(dep)
    changes = {k: v for k, v in wanted.items() if current[k] != v}
    if not changes:
        return False
    _check_changes(session, platform=platform, group_id=dep.group_id, changes=changes, admitting=not dep.stopped)
    if not dep.stopped:
        assert group is not None
        _admit(
            session,
            group=group,
            instance_type=changes.get("instance_type", dep.instance_type),
            replicas=changes.get("replicas", dep.replicas),
            exclude=dep.id,
        )
    _assign(dep, changes)
    record(session, dep, platform=platform, caller=caller, action=action, message=message)
    return True


def update(
    session: Session, *, platform: Platform, caller: Caller, deployment_id: str, body: DeploymentUpdate
) -> Deployment:
    sent = sorted(body.model_fields_set & set(IMMUTABLE_FIELDS))
    if sent:
        raise ValidationFailed(
            f"{', '.join(sent)} cannot change after create (create a new deployment instead)",
            code="IMMUTABLE_FIELD",
        )
    dep, group = locked(session, caller=caller, deployment_id=deployment_id, admission=True)
    _apply(session, dep, group, platform=platform, caller=caller, wanted=_requested(body),
           action="update", message=body.update_message or "Deployment updated")
    return dep


def rollback(
    session: Session, *, platform: Platform, caller: Caller, deployment_id: str, version: int
) -> Deployment:
    dep, group = locked(session, caller=caller, deployment_id=deployment_id, admission=True)
    old = session.get(DeploymentVersion, (dep.id, version))
    if old is None:
        raise NotFound(f"version {version} of deployment {deployment_id!r} not found")
    wanted = {f: old.spec[f] for f in SPEC_FIELDS if f in old.spec}
    _apply(session, dep, group, platform=platform, caller=caller, wanted=wanted,
           action="rollback", message=f"Rolled back to version {version}")
    return dep


def stop(session: Session, *, platform: Platform, caller: Caller, deployment_id: str) -> Deployment:
    dep, _ = locked(session, caller=caller, deployment_id=deployment_id, admission=False)
    if not dep.stopped:
        dep.stopped = True
        record(session, dep, platform=platform, caller=caller, action="stop", message="Deployment stopped")
    return dep


def start(session: Session, *, platform: Platform, caller: Caller, deployment_id: str) -> Deployment:
    dep, group = locked(session, caller=caller, deployment_id=deployment_id, admission=True)
    if dep.stopped:
        assert group is not None
        _admit(session, group=group, instance_type=dep.instance_type, replicas=dep.replicas, exclude=dep.id)
        dep.stopped = False
        record(session, dep, platform=platform, caller=caller, action="start", message="Deployment started")
    return dep


def remove(session: Session, *, caller: Caller, deployment_id: str) -> None:
    dep, _ = locked(session, caller=caller, deployment_id=deployment_id, admission=False)
    session.expunge(dep)
    session.execute(delete(Deployment).where(Deployment.id == deployment_id))


def list_deployments(
    session: Session,
    *,
    caller: Caller,
    group: str | None = None,
    status: str | None = None,
    q: str | None = None,
    mine: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Deployment], int]:
    """Newest update first; members see only their groups' deployments."""
    where: list[Any] = []
    if not caller.is_admin:
        if not caller.group_ids:
            return [], 0
        where.append(Deployment.group_id.in_(sorted(caller.group_ids)))
    if group:
        where.append(Deployment.group_id == select(Group.id).where(Group.name == group).scalar_subquery())
    if status:
        where.append(Deployment.status == status)
    if q:
        where.append(Deployment.id.icontains(q, autoescape=True) | Deployment.name.icontains(q, autoescape=True))
    if mine:
        where.append(Deployment.updated_by == caller.username)
    total = session.scalar(select(func.count()).select_from(Deployment).where(*where)) or 0
    if offset >= total:
        return [], total
    rows = session.scalars(
        _query().where(*where).order_by(Deployment.updated_at.desc(), Deployment.id).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def history(session: Session, *, caller: Caller, deployment_id: str) -> list[DeploymentVersion]:
    dep = load(session, caller=caller, deployment_id=deployment_id)
    return list(
        session.scalars(
            select(DeploymentVersion)
            .where(DeploymentVersion.deployment_id == dep.id)
            .order_by(DeploymentVersion.version.desc())
        )
    )


def history_entry(session: Session, *, caller: Caller, deployment_id: str, version: int) -> DeploymentVersion:
    dep = load(session, caller=caller, deployment_id=deployment_id)
    entry = session.get(DeploymentVersion, (dep.id, version))
    if entry is None:
        raise NotFound(f"version {version} of deployment {deployment_id!r} not found")
    return entry


def id_availability(session: Session, *, deployment_id: str) -> dict[str, Any]:
    problem = id_problem(deployment_id)
    if problem is None and _exists(session, deployment_id):
        problem = "already in use"
    return {"id": deployment_id, "available": problem is None, "reason": problem}
