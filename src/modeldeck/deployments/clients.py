"""Private-endpoint clients: crypto-random tokens, shown once, stored as SHA-256.

Adding or removing a client is a spec change (history entry, generation bump) because the gateway
learns about credentials through the controller.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from modeldeck.auth.deps import Caller
from modeldeck.auth.security import hash_token, new_token
from modeldeck.context import Platform
from modeldeck.db import utcnow
from modeldeck.deployments import service
from modeldeck.deployments.tables import DeploymentClient
from modeldeck.errors import Conflict, NotFound, ValidationFailed

MAX_CLIENTS = 100


def list_clients(session: Session, *, caller: Caller, deployment_id: str) -> list[DeploymentClient]:
    dep = service.load(session, caller=caller, deployment_id=deployment_id)
    return sorted(dep.clients, key=lambda c: c.name)


def add_client(
    session: Session, *, platform: Platform, caller: Caller, deployment_id: str, name: str
) -> str:
    """Returns the plain token; it is not stored and cannot be read again."""
    dep, _ = service.locked(session, caller=caller, deployment_id=deployment_id, admission=False)
    if any(c.name == name for c in dep.clients):
        raise Conflict(f"client {name!r} already exists for deployment {deployment_id!r}")
    if len(dep.clients) >= MAX_CLIENTS:
        raise ValidationFailed(f"a deployment has at most {MAX_CLIENTS} clients")
    token = new_token("mdc")
    dep.clients.append(
        DeploymentClient(name=name, token_hash=hash_token(token), created_by=caller.username, created_at=utcnow())
    )
    service.record(session, dep, platform=platform, caller=caller, action="client",
                   message=f"Client {name} added")
    return token


def remove_client(
    session: Session, *, platform: Platform, caller: Caller, deployment_id: str, name: str
) -> None:
    dep, _ = service.locked(session, caller=caller, deployment_id=deployment_id, admission=False)
    client = next((c for c in dep.clients if c.name == name), None)
    if client is None:
        raise NotFound(f"client {name!r} not found for deployment {deployment_id!r}")
    dep.clients.remove(client)
    service.record(session, dep, platform=platform, caller=caller, action="client",
                   message=f"Client {name} removed")
