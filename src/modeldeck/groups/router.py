"""/groups: admins write; members read their own groups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from modeldeck.auth.deps import AdminUser, CurrentUser, PlatformDep
from modeldeck.groups import service
from modeldeck.groups.schemas import GroupCreate, GroupOut, GroupUpdate

router = APIRouter(tags=["groups"])

NamePath = Annotated[str, Path(max_length=256)]


@router.get("/groups")
def list_groups(caller: CurrentUser, platform: PlatformDep) -> list[GroupOut]:
    """Admins see every group; other users the groups they belong to."""
    with platform.db.read() as session:
        return service.list_groups(session, caller=caller)


@router.post("/groups", status_code=status.HTTP_201_CREATED)
def create_group(body: GroupCreate, _caller: AdminUser, platform: PlatformDep) -> GroupOut:
    with platform.db.write() as session:
        return service.create_group(session, body=body)


@router.get("/groups/{name}")
def get_group(name: NamePath, caller: CurrentUser, platform: PlatformDep) -> GroupOut:
    with platform.db.read() as session:
        return service.get_group(session, caller=caller, name=name)


@router.patch("/groups/{name}")
def update_group(name: NamePath, body: GroupUpdate, _caller: AdminUser, platform: PlatformDep) -> GroupOut:
    with platform.db.write() as session:
        return service.update_group(session, name=name, body=body)


@router.delete("/groups/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_group(name: NamePath, _caller: AdminUser, platform: PlatformDep) -> None:
    """Refused with 409 while the group still has deployments (stopped ones included)."""
    with platform.db.write() as session:
        service.delete_group(session, name=name)
