"""``GET /api/v1/deployments/{id}/metrics`` (the Monitor tab) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.requests import HTTPConnection

from modeldeck.auth.deps import CurrentUser, PlatformDep, authenticate, credentials_from
from modeldeck.deployments import service
from modeldeck.errors import Forbidden, Unauthenticated
from modeldeck.metrics import prometheus
from modeldeck.metrics.store import Point

router = APIRouter(tags=["metrics"])
exposition_router = APIRouter()

Window = Literal["5m", "1h", "24h"]


@router.get(
    "/deployments/{deployment_id}/metrics",
    responses={401: {"description": "not authenticated"},
               404: {"description": "no such deployment, or not in one of your groups"}},
)
def deployment_metrics(
    deployment_id: str,
    caller: CurrentUser,
    platform: PlatformDep,
    window: Annotated[Window, Query(description="time window")] = "5m",
) -> Response:
    """Time series for the Monitor tab: one value per interval, columns aligned with ``timestamps``."""
    with platform.db.read() as session:
        dep = service.load(session, caller=caller, deployment_id=deployment_id)
        health: dict[str, Any] = {
            "status": dep.status,
            "available_replicas": dep.available_replicas,
            "desired_replicas": 0 if dep.stopped else dep.replicas,
        }
    now = time.time()
    resolution, points = platform.metrics.points(deployment_id, window, now=now)
    requests, error_rate = platform.metrics.recent_error_rate(deployment_id, now=now)
    health.update(requests_5m=requests, error_rate_5m=error_rate)
    body = {"deployment_id": deployment_id, "window": window, "resolution_s": resolution,
            **series_view(points), "health": health}
    return Response(orjson.dumps(body), media_type="application/json")


def series_view(points: list[Point]) -> dict[str, Any]:
    def rate(n: int, p: Point) -> float:
        return round(n / p.duration, 3) if p.duration > 0 else 0.0

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    names: dict[str, None] = {}
    for p in points:
        names.update(dict.fromkeys(p.replicas))
    replicas = []
    for name in names:
        seen = [p.replicas.get(name) for p in points]
        replicas.append({
            "name": name,
            "cpu": [None if u is None or u.cpu is None else round(u.cpu, 4) for u in seen],
            "memory": [None if u is None else u.memory for u in seen],
            "gpu_utilization": [None if u is None or u.gpu_utilization is None else round(u.gpu_utilization, 4)
                                for u in seen],
            "gpu_memory": [None if u is None else u.gpu_memory for u in seen],
        })
    return {
        "timestamps": [p.t for p in points],
        "rps": [rate(p.requests, p) for p in points],
        "qps": [rate(p.predictions, p) for p in points],
        "requests": [p.requests for p in points],
        "latency_ms": {
            "p50": [ms(p.p50) for p in points],
            "p95": [ms(p.p95) for p in points],
            "p99": [ms(p.p99) for p in points],
        },
        "error_rate": [round(p.errors_5xx / p.requests, 4) if p.requests else None for p in points],
        "errors_4xx": [p.errors_4xx for p in points],
        "errors_5xx": [p.errors_5xx for p in points],
        "replicas": replicas,
    }


@exposition_router.get("/metrics", include_in_schema=False)
def exposition(conn: HTTPConnection, platform: PlatformDep) -> Response:
    """Needs ``Authorization: Bearer <metrics_token>`` (setting) or an administrator's credentials."""
    token = platform.settings.metrics_token
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if not (token and scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())):
        caller = authenticate(platform, credentials_from(conn))
        if caller is None:
            raise Unauthenticated("send 'Authorization: Bearer <metrics token or admin API token>'")
        if not caller.is_admin:
            raise Forbidden("administrator role or the metrics token required")
    text = prometheus.render(platform.metrics, platform.routes)
    return Response(text, media_type=prometheus.CONTENT_TYPE)
