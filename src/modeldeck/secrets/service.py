"""Image pull secrets: registry credentials, password encrypted at rest and never returned."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modeldeck.auth.deps import Caller
from modeldeck.auth.schemas import is_name
from modeldeck.deployments import quota
from modeldeck.deployments.tables import Deployment
from modeldeck.errors import Conflict, NotFound
from modeldeck.secrets.crypto import encrypt_password
from modeldeck.secrets.schemas import SECRET_NAME_PATTERN, SecretCreate, SecretOut, SecretUpdate
from modeldeck.secrets.tables import ImagePullSecret
from modeldeck.settings import Settings


def _out(secret: ImagePullSecret) -> SecretOut:
    return SecretOut(
        name=secret.name,
        registry=secret.registry_host,
        username=secret.username,
        created_at=secret.created_at,
    )


def find(session: Session, name: str, *, for_update: bool = False) -> ImagePullSecret | None:
    if not is_name(SECRET_NAME_PATTERN, name):
        return None
    query = select(ImagePullSecret).where(ImagePullSecret.name == name)
    return session.scalar(query.with_for_update() if for_update else query)


def list_secrets(session: Session, *, caller: Caller) -> list[SecretOut]:
    rows = session.scalars(select(ImagePullSecret).order_by(ImagePullSecret.name))
    return [_out(s) if caller.is_admin else SecretOut(name=s.name) for s in rows]


def create_secret(session: Session, *, settings: Settings, body: SecretCreate) -> SecretOut:
    if find(session, body.name) is not None:
        raise Conflict(f"image pull secret {body.name!r} already exists")
    secret = ImagePullSecret(
        name=body.name,
        registry_host=body.registry,
        username=body.username,
        password_encrypted=encrypt_password(settings, body.password),
    )
    session.add(secret)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(f"image pull secret {body.name!r} already exists") from exc
    return _out(secret)


def update_secret(session: Session, *, settings: Settings, name: str, body: SecretUpdate) -> SecretOut:
    secret = find(session, name)
    if secret is None:
        raise NotFound(f"image pull secret {name!r} not found")
    if body.registry is not None:
        secret.registry_host = body.registry
    if body.username is not None:
        secret.username = body.username
    if body.password is not None:
        secret.password_encrypted = encrypt_password(settings, body.password)
    session.flush()
    return _out(secret)


def delete_secret(session: Session, *, name: str) -> None:
    secret = find(session, name, for_update=True)
    if secret is None:
        raise NotFound(f"image pull secret {name!r} not found")
    quota.ensure_unused(
        session, column=Deployment.image_pull_secret, value=name, what="image pull secret",
        remedy="stop them or update them to another secret first",
    )
    session.delete(secret)
