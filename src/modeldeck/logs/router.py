"""Replica logs: ``GET /deployments/{id}/logs`` (text/plain; ``follow=true`` streams) and the console's
WebSocket ``/deployments/{id}/logs/ws``. Same rule as deployments: a member of its group or an admin,
else 404; anonymous 401. Reading goes to the runtime, never through a mutating method."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
import orjson
from fastapi import APIRouter, Query, WebSocket
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from modeldeck.auth.deps import Caller, CurrentUser, PlatformDep, authenticate, credentials_from
from modeldeck.context import Platform, get_platform
from modeldeck.deployments import service
from modeldeck.errors import ApiError, ValidationFailed, error_body

router = APIRouter(tags=["logs"])

MAX_TAIL = 10_000
Tail = Annotated[int, Query(ge=1, le=MAX_TAIL, description="last lines (per replica when merged)")]
ReplicaName = Annotated[
    str | None,
    Query(max_length=200, description="one replica, e.g. `<id>-g3-r0`; absent: all replicas, `[replica] `-prefixed"),
]
_TEXT = "text/plain; charset=utf-8"
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not authenticated"},
    404: {"description": "no such deployment, or not in one of your groups"},
    422: {"description": "invalid tail or replica"},
}


def _check_visible(platform: Platform, caller: Caller, deployment_id: str) -> None:
    with platform.db.read() as session:
        service.load(session, caller=caller, deployment_id=deployment_id)


def _check_replica(deployment_id: str, replica: str | None) -> None:
    if replica is not None and not re.fullmatch(re.escape(deployment_id) + r"-g\d+-r\d+", replica):
        raise ValidationFailed(f"replica must name a replica of this deployment, like {deployment_id}-g1-r0")


@router.get(
    "/deployments/{deployment_id}/logs",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "log lines"}, **_ERRORS},
)
async def deployment_logs(
    deployment_id: str,
    caller: CurrentUser,
    platform: PlatformDep,
    replica: ReplicaName = None,
    tail: Tail = 100,
    follow: Annotated[bool, Query(description="keep the response open and stream new lines")] = False,
) -> Response:
    """The last ``tail`` lines of one replica, or of each replica merged; logs of crashed, restarted and
    replaced replicas stay readable. With ``follow=true`` new lines stream until the client disconnects."""
    await run_in_threadpool(_check_visible, platform, caller, deployment_id)
    _check_replica(deployment_id, replica)
    runtime = platform.runtime
    if not follow:
        text = await run_in_threadpool(runtime.read_logs, deployment_id, replica=replica, tail=tail)
        return Response(text, media_type=_TEXT)
    new_lines = runtime.follow_logs(deployment_id, replica=replica)  # positions are taken before the tail

    async def stream() -> AsyncIterator[str]:
        text = await run_in_threadpool(runtime.read_logs, deployment_id, replica=replica, tail=tail)
        if text:
            yield text
        async for line in new_lines:
            yield line

    return StreamingResponse(
        stream(), media_type=_TEXT, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.websocket("/deployments/{deployment_id}/logs/ws")
async def deployment_logs_ws(
    websocket: WebSocket, deployment_id: str, replica: str | None = None, tail: int = 100
) -> None:
    """The console's log tab: one text message with the tail, then one per new line. Refusals are HTTP
    responses to the handshake where the server allows it (401, 403 for a foreign Origin, 404, 422),
    else close codes 4401, 4403, 4404, 4422."""
    platform = get_platform(websocket)
    try:
        _check_origin(websocket, platform)
        caller = await run_in_threadpool(authenticate, platform, credentials_from(websocket))
        if caller is None:
            raise ApiError("authentication required: log in first", code="UNAUTHENTICATED", status=401)
        await run_in_threadpool(_check_visible, platform, caller, deployment_id)
        if not 1 <= tail <= MAX_TAIL:
            raise ValidationFailed(f"tail must be between 1 and {MAX_TAIL}")
        _check_replica(deployment_id, replica)
    except ApiError as e:
        await _deny(websocket, e)
        return
    await websocket.accept()
    runtime = platform.runtime
    new_lines = runtime.follow_logs(deployment_id, replica=replica)
    client_left = False
    try:
        text = await run_in_threadpool(runtime.read_logs, deployment_id, replica=replica, tail=tail)
        if text:
            await websocket.send_text(text)
        async with anyio.create_task_group() as tasks:

            async def pump() -> None:
                try:
                    async for line in new_lines:
                        await websocket.send_text(line)
                except (WebSocketDisconnect, RuntimeError, OSError):
                    pass  # the client left mid-send
                tasks.cancel_scope.cancel()  # or the logs are gone: the deployment was deleted

            tasks.start_soon(pump)
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass  # the client has nothing to say; reading is how we notice it leave
            client_left = True
            tasks.cancel_scope.cancel()
    except (WebSocketDisconnect, RuntimeError, OSError):
        client_left = True
    if not client_left:
        await websocket.close()


def _check_origin(websocket: WebSocket, platform: Platform) -> None:
    """Browsers send cookies with cross-site WebSocket handshakes: only our own pages may connect."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return  # not a browser (CLI, scripts): they authenticate with a bearer token
    allowed = {websocket.headers.get("host", ""), urlsplit(platform.settings.public_base_url).netloc}
    if urlsplit(origin).netloc not in allowed:
        raise ApiError("cross-origin WebSocket refused", code="FORBIDDEN", status=403)


async def _deny(websocket: WebSocket, error: ApiError) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = Response(orjson.dumps(error_body(error.code, error.message)), status_code=error.status,
                            media_type="application/json")
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=4000 + error.status, reason=error.message[:120])

