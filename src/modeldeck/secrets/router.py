"""/secrets: image pull secrets; admins write, everyone lists the names."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from modeldeck.auth.deps import AdminUser, CurrentUser, PlatformDep
from modeldeck.secrets import service
from modeldeck.secrets.schemas import SecretCreate, SecretOut, SecretUpdate

router = APIRouter(tags=["image pull secrets"])

NamePath = Annotated[str, Path(max_length=256)]


@router.get("/secrets", response_model_exclude_none=True)
def list_secrets(caller: CurrentUser, platform: PlatformDep) -> list[SecretOut]:
    """Names for everyone; registry and username for admins; the password never."""
    with platform.db.read() as session:
        return service.list_secrets(session, caller=caller)


@router.post("/secrets", status_code=status.HTTP_201_CREATED)
def create_secret(body: SecretCreate, _caller: AdminUser, platform: PlatformDep) -> SecretOut:
    with platform.db.write() as session:
        return service.create_secret(session, settings=platform.settings, body=body)


@router.patch("/secrets/{name}")
def update_secret(name: NamePath, body: SecretUpdate, _caller: AdminUser, platform: PlatformDep) -> SecretOut:
    """Rotates credentials in place (an addition to the v1 table: no delete-and-recreate needed)."""
    with platform.db.write() as session:
        return service.update_secret(session, settings=platform.settings, name=name, body=body)


@router.delete("/secrets/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_secret(name: NamePath, _caller: AdminUser, platform: PlatformDep) -> None:
    """Refused with 409 while a deployment that is not stopped uses the secret."""
    with platform.db.write() as session:
        service.delete_secret(session, name=name)
