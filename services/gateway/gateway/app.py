"""The FastAPI application of the edge: routes, middleware and error handlers, built per settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway import errors
from gateway.api import account, presets, signin, system
from gateway.auth.dependencies import install_security_schemes
from gateway.auth.edge import Edge
from gateway.auth.middleware import EdgeAuth
from gateway.backends import Backends
from gateway.middleware import RequestContext
from gateway.settings import GatewaySettings
from servicekit import metrics
from servicekit.logging import get_logger

log = get_logger("gateway")
DESCRIPTION = """
REST API of comfy-api-service: run ComfyUI workflows and named presets, follow their progress and fetch
their outputs. Every error answers `{"error": {"code", "status", "message", "details"}}`.

Authenticate with `Authorization: Bearer <api key>` (create keys at `/api/v1/api-keys`). Browsers use the
session cookie from Google sign-in (`/auth/google/login`) and send `X-CSRF-Token` on state-changing requests.
Responses carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`; a 429 adds `Retry-After`.
"""


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway application; backends are connected in its lifespan, so building it does no I/O."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = Backends.open(settings)
        app.state.edge = Edge.open(settings, app.state.backends.identity)
        log.info("gateway.started", url=f"http://{settings.http_host}:{settings.http_port}")
        try:
            yield
        finally:
            await app.state.edge.close()
            await app.state.backends.close()
            log.info("gateway.stopped")

    app = FastAPI(
        title="comfy-api-service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics.create("http")
    for exc_type, handler in errors.HANDLERS.items():
        app.add_exception_handler(exc_type, handler)
    app.include_router(system.router)
    app.include_router(account.router)
    app.include_router(presets.router)
    app.include_router(signin.router)
    install_security_schemes(app)
    # Starlette runs the last one added first: the request id is bound before authentication logs anything.
    app.add_middleware(EdgeAuth)
    app.add_middleware(RequestContext, metrics=app.state.metrics)
    return app
