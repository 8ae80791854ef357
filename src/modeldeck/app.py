"""create_app(settings): the one place the platform is assembled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modeldeck import __version__
from modeldeck.auth.bootstrap import ensure_admin
from modeldeck.auth.router import router as auth_router
from modeldeck.context import Platform
from modeldeck.controller.loop import ControllerLoop
from modeldeck.db import Database
from modeldeck.deployments.router import router as deployments_router
from modeldeck.errors import FastJSONResponse, install_error_handlers
from modeldeck.gateway.proxy import FastAPIWithGateway, Gateway
from modeldeck.gateway.publish import RoutePublisher
from modeldeck.groups.router import router as groups_router
from modeldeck.instance_types.router import router as instance_types_router
from modeldeck.logs.router import router as logs_router
from modeldeck.metrics.router import exposition_router
from modeldeck.metrics.router import router as metrics_router
from modeldeck.metrics.sampler import Sampler
from modeldeck.migrations.runner import upgrade
from modeldeck.runtimes import build_runtime
from modeldeck.runtimes.base import Runtime
from modeldeck.secrets.router import router as secrets_router
from modeldeck.settings import Settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    platform = Platform(settings=settings, db=db, runtime=runtime or build_runtime(settings))
    controller = ControllerLoop(platform)
    platform.wake = controller.wake
    controller.on_change.append(RoutePublisher(db, platform.routes, platform.metrics))
    gateway = Gateway(
        platform.routes,
        platform.metrics,
        max_body_bytes=settings.gateway_max_body_bytes,
        upstream_timeout_s=settings.gateway_upstream_timeout_s,
    )
    sampler = Sampler(platform.metrics, platform.runtime, platform.routes.targets)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        upgrade(db.write_engine)
        ensure_admin(db, settings.admin_password)
        if settings.controller_enabled:
            await controller.start()
        await sampler.start()
        try:
            yield
        finally:
            await sampler.stop()
            await controller.stop()
            gateway.close()
            platform.runtime.close()
            db.dispose()

    app = FastAPIWithGateway(
        title="modeldeck",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        default_response_class=FastJSONResponse,
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.state.controller = controller
    install_error_handlers(app)
    app.gateway = gateway  # /deployment/... is answered before FastAPI's middleware and routing

    for router in (auth_router, groups_router, instance_types_router, secrets_router, deployments_router,
                   logs_router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics_router, prefix=API_PREFIX)
    app.include_router(exposition_router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
