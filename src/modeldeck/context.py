"""The platform's long-lived parts, built once by create_app and reached from requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from modeldeck.db import Database
from modeldeck.gateway.routes import RouteTable
from modeldeck.metrics.store import MetricsStore
from modeldeck.runtimes.base import Runtime
from modeldeck.settings import Settings


def _no_wake(_deployment_id: str) -> None:
    return None


@dataclass
class Platform:
    settings: Settings
    db: Database
    runtime: Runtime
    # Wakes the controller for one deployment after a committed spec change.
    wake: Callable[[str], None] = _no_wake
    routes: RouteTable = field(default_factory=RouteTable)  # the gateway's view, fed by the controller
    metrics: MetricsStore = field(default_factory=MetricsStore)  # request counters and time series
    extras: dict[str, Any] = field(default_factory=dict)


def get_platform(conn: HTTPConnection) -> Platform:
    platform: Platform = conn.app.state.platform
    return platform
