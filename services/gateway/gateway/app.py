"""The FastAPI application of the edge: routes, middleware and error handlers, built per settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway import errors
from gateway.api import account, events, files, generate, jobs, presets, signin, system, uploads, webhooks
from gateway.auth.dependencies import install_security_schemes
from gateway.auth.edge import Edge
from gateway.auth.middleware import EdgeAuth
from gateway.backends import Backends
from gateway.fetch import UrlFetcher
from gateway.files import Files
from gateway.job_body import JobBody
from gateway.limits import BodyLimit, path_limits
from gateway.middleware import RequestContext
from gateway.settings import GatewaySettings
from gateway.uploads import Uploads
from servicekit import metrics
from servicekit.logging import get_logger

log = get_logger("gateway")
DESCRIPTION = """
REST API of comfy-api-service: run ComfyUI workflows and named presets, follow their progress and fetch
their outputs. Every error answers `{"error": {"code", "status", "message", "details"}}`.

Authenticate with `Authorization: Bearer <api key>` (create keys at `/api/v1/api-keys`). Browsers use the
session cookie from Google sign-in (`/auth/google/login`) and send `X-CSRF-Token` on state-changing requests.
Jobs: upload an image (`POST /api/v1/uploads`), submit a preset or workflow on it (`POST /api/v1/jobs`,
with `Idempotency-Key` to retry safely), follow it (`GET /api/v1/jobs/{id}/events`, server-sent events
resumable with `Last-Event-ID`) and download its outputs through the signed `download_url` of each.

Responses carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`; a 429 adds `Retry-After`.
"""


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway application; backends are connected in its lifespan, so building it does no I/O."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = Backends.open(settings)
        app.state.edge = Edge.open(settings, app.state.backends.identity)
        app.state.files = Files.open(settings)
        fetcher = UrlFetcher(
            frozenset(h.lower() for h in settings.input_url_allowed_hosts),
            settings.upload_max_bytes,
            settings.input_url_timeout_seconds,
        )
        app.state.uploads = Uploads(
            app.state.files, fetcher, settings.upload_max_bytes, settings.upload_max_pixels
        )
        log.info("gateway.started", url=f"http://{settings.http_host}:{settings.http_port}")
        try:
            yield
        finally:
            await fetcher.aclose()
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
    for router in (
        jobs.router,
        events.router,
        generate.router,
        webhooks.router,
        uploads.router,
        files.router,
    ):
        app.include_router(router)
    app.include_router(signin.router)
    install_security_schemes(app, JobBody.model_json_schema(ref_template="#/components/schemas/{model}"))
    # Starlette runs the last one added first: the request id is bound before authentication logs anything,
    # and bodies are counted only for authenticated requests that passed the rate limits.
    app.add_middleware(BodyLimit, limit_for=path_limits(settings.max_body_bytes, settings.upload_max_bytes))
    app.add_middleware(EdgeAuth)
    app.add_middleware(RequestContext, metrics=app.state.metrics)
    return app
