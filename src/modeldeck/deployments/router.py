"""/api/v1/deployments: one transaction per request; the controller is woken after the commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import AfterValidator
from sqlalchemy.orm import Session

from modeldeck.auth.deps import CurrentUser, PlatformDep
from modeldeck.context import Platform
from modeldeck.deployments import clients, service
from modeldeck.deployments.schemas import (
    ClientCreate,
    ClientCreated,
    ClientOut,
    DeploymentCreate,
    DeploymentList,
    DeploymentOut,
    DeploymentUpdate,
    HistoryEntry,
    IdAvailability,
    RollbackRequest,
    Status,
    clean_text,
    deployment_view,
)
from modeldeck.deployments.tables import Deployment, DeploymentVersion

router = APIRouter(tags=["deployments"])

DeploymentId = Annotated[str, Path(description="deployment ID")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not authenticated"},
    404: {"description": "no such deployment, or not in one of your groups"},
    422: {"description": "invalid request"},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "conflict, quota exceeded or model deployment disabled for the group"},
}


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def _view(platform: PlatformDep, dep: Deployment) -> dict[str, Any]:
    return deployment_view(dep, platform.settings.public_base_url)


def _change(platform: Platform, write: Callable[[Session], Deployment], status: int = 200) -> Response:
    """One transaction for a spec change; the controller is woken only once it has committed."""
    with platform.db.write() as session:
        view = _view(platform, write(session))
    platform.wake(view["id"])
    return _json(view, status)


def _history_view(entry: DeploymentVersion) -> dict[str, Any]:
    return {
        "version": entry.version,
        "action": entry.action,
        "message": entry.message,
        "created_by": entry.created_by,
        "created_at": entry.created_at,
        "spec": entry.spec,
    }


@router.get("/deployments", response_model=DeploymentList, responses=_ERRORS)
def list_deployments(
    caller: CurrentUser,
    platform: PlatformDep,
    group: Annotated[str | None, Query(max_length=64), AfterValidator(clean_text)] = None,
    status: Annotated[Status | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=255, description="substring of ID or name"),
                 AfterValidator(clean_text)] = None,
    mine: Annotated[bool, Query(description="only deployments you changed last")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    with platform.db.read() as session:
        rows, total = service.list_deployments(
            session, caller=caller, group=group, status=status, q=q, mine=mine, limit=limit, offset=offset
        )
        base = platform.settings.public_base_url
        return _json({"items": [deployment_view(d, base) for d in rows], "total": total})


@router.post("/deployments", status_code=201, response_model=DeploymentOut, responses=_WRITE_ERRORS)
def create_deployment(body: DeploymentCreate, caller: CurrentUser, platform: PlatformDep) -> Response:
    return _change(platform, lambda s: service.create(s, platform=platform, caller=caller, body=body), 201)


@router.get("/deployments/{deployment_id}", response_model=DeploymentOut, responses=_ERRORS)
def get_deployment(deployment_id: DeploymentId, caller: CurrentUser, platform: PlatformDep) -> Response:
    with platform.db.read() as session:
        return _json(_view(platform, service.load(session, caller=caller, deployment_id=deployment_id)))


@router.patch("/deployments/{deployment_id}", response_model=DeploymentOut, responses=_WRITE_ERRORS)
def update_deployment(
    deployment_id: DeploymentId, body: DeploymentUpdate, caller: CurrentUser, platform: PlatformDep
) -> Response:
    return _change(
        platform,
        lambda s: service.update(s, platform=platform, caller=caller, deployment_id=deployment_id, body=body),
    )


@router.post("/deployments/{deployment_id}/stop", response_model=DeploymentOut, responses=_ERRORS)
def stop_deployment(deployment_id: DeploymentId, caller: CurrentUser, platform: PlatformDep) -> Response:
    return _change(platform, lambda s: service.stop(s, platform=platform, caller=caller, deployment_id=deployment_id))


@router.post("/deployments/{deployment_id}/start", response_model=DeploymentOut, responses=_WRITE_ERRORS)
def start_deployment(deployment_id: DeploymentId, caller: CurrentUser, platform: PlatformDep) -> Response:
    return _change(
        platform, lambda s: service.start(s, platform=platform, caller=caller, deployment_id=deployment_id)
    )


@router.post("/deployments/{deployment_id}/rollback", response_model=DeploymentOut, responses=_WRITE_ERRORS)
def rollback_deployment(
    deployment_id: DeploymentId, body: RollbackRequest, caller: CurrentUser, platform: PlatformDep
) -> Response:
    return _change(
        platform,
        lambda s: service.rollback(s, platform=platform, caller=caller, deployment_id=deployment_id,
                                   version=body.version),
    )


@router.delete("/deployments/{deployment_id}", status_code=204, responses=_ERRORS)
def delete_deployment(deployment_id: DeploymentId, caller: CurrentUser, platform: PlatformDep) -> Response:
    with platform.db.write() as session:
        service.remove(session, caller=caller, deployment_id=deployment_id)
    platform.wake(deployment_id)  # the controller removes what the runtime still runs
    return Response(status_code=204)


@router.get("/deployments/{deployment_id}/history", response_model=list[HistoryEntry], responses=_ERRORS)
def get_history(deployment_id: DeploymentId, caller: CurrentUser, platform: PlatformDep) -> Response:
    with platform.db.read() as session:
        entries = service.history(session, caller=caller, deployment_id=deployment_id)
        return _json([_history_view(e) for e in entries])


@router.get("/deployments/{deployment_id}/history/{version}", response_model=HistoryEntry, responses=_ERRORS)
def get_history_entry(
    deployment_id: DeploymentId, version: Version, caller: CurrentUser, platform: PlatformDep
) -> Response:
    with platform.db.read() as session:
        entry = service.history_entry(session, caller=caller, deployment_id=deployment_id, version=version)
        return _json(_history_view(entry))


@router.get("/deployments/{deployment_id}/clients", response_model=list[ClientOut], responses=_ERRORS)
def list_clients(deployment_id: DeploymentId, caller: CurrentUser, platform: PlatformDep) -> Response:
    with platform.db.read() as session:
        rows = clients.list_clients(session, caller=caller, deployment_id=deployment_id)
        return _json([{"name": c.name, "created_by": c.created_by, "created_at": c.created_at} for c in rows])


@router.post(
    "/deployments/{deployment_id}/clients", status_code=201, response_model=ClientCreated,
    responses=_WRITE_ERRORS,
)
def add_client(
    deployment_id: DeploymentId, body: ClientCreate, caller: CurrentUser, platform: PlatformDep
) -> Response:
    with platform.db.write() as session:
        token = clients.add_client(
            session, platform=platform, caller=caller, deployment_id=deployment_id, name=body.name
        )
    platform.wake(deployment_id)
    return _json({"name": body.name, "token": token}, 201)


@router.delete("/deployments/{deployment_id}/clients/{name}", status_code=204, responses=_ERRORS)
def remove_client(
    deployment_id: DeploymentId,
    name: Annotated[str, Path(max_length=63)],
    caller: CurrentUser,
    platform: PlatformDep,
) -> Response:
    with platform.db.write() as session:
        clients.remove_client(session, platform=platform, caller=caller, deployment_id=deployment_id, name=name)
    platform.wake(deployment_id)
    return Response(status_code=204)


@router.get("/deployment-ids/{deployment_id}/available", response_model=IdAvailability, responses=_ERRORS)
def id_available(deployment_id: DeploymentId, caller: CurrentUser, platform: PlatformDep) -> Response:
    with platform.db.read() as session:
        return _json(service.id_availability(session, deployment_id=deployment_id))
