"""Operational endpoints: liveness, readiness of every backend, and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["system"])


@router.get("/health", summary="Liveness: the gateway process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: every backend service reports SERVING",
    responses={503: {"description": "At least one backend is not serving"}},
)
async def ready(request: Request) -> JSONResponse:
    state = request.app.state
    services = await state.backends.readiness(state.settings.readiness_timeout_seconds)
    serving = all(status == "SERVING" for status in services.values())
    # Redis is reported but does not decide readiness: without it the edge fails open (see gateway.ratelimit).
    redis = await state.edge.redis_status()
    return JSONResponse(
        {"status": "ready" if serving else "not_ready", "services": services, "redis": redis},
        status_code=200 if serving else 503,
    )


@router.get("/metrics", summary="Prometheus metrics of the gateway", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
