"""/instance-types: admins write; every user reads the types their groups may use."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from modeldeck.auth.deps import AdminUser, CurrentUser, PlatformDep
from modeldeck.instance_types import service
from modeldeck.instance_types.schemas import InstanceTypeCreate, InstanceTypeOut, InstanceTypeUpdate

router = APIRouter(tags=["instance types"])

NamePath = Annotated[str, Path(max_length=256)]


@router.get("/instance-types")
def list_instance_types(
    caller: CurrentUser,
    platform: PlatformDep,
    group: Annotated[str | None, Query(max_length=256, description="only the types this group may use")] = None,
) -> list[InstanceTypeOut]:
    """Admins see all types; other users the global ones and those of their groups."""
    with platform.db.read() as session:
        return service.list_instance_types(session, caller=caller, group=group)


@router.post("/instance-types", status_code=status.HTTP_201_CREATED)
def create_instance_type(body: InstanceTypeCreate, caller: AdminUser, platform: PlatformDep) -> InstanceTypeOut:
    with platform.db.write() as session:
        return service.create_instance_type(session, caller=caller, body=body)


@router.get("/instance-types/{name}")
def get_instance_type(name: NamePath, caller: CurrentUser, platform: PlatformDep) -> InstanceTypeOut:
    with platform.db.read() as session:
        return service.get_instance_type(session, caller=caller, name=name)


@router.patch("/instance-types/{name}")
def update_instance_type(
    name: NamePath, body: InstanceTypeUpdate, caller: AdminUser, platform: PlatformDep
) -> InstanceTypeOut:
    with platform.db.write() as session:
        return service.update_instance_type(session, caller=caller, name=name, body=body)


@router.delete("/instance-types/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_instance_type(name: NamePath, _caller: AdminUser, platform: PlatformDep) -> None:
    """Refused with 409 while a deployment that is not stopped uses the type."""
    with platform.db.write() as session:
        service.delete_instance_type(session, name=name)
