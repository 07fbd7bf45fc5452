"""`POST /api/v1/generate`: submit and, with `wait=true`, hold the request until the job ends.

The wait is bounded by a setting; a job still unfinished then is answered 202 with its current state and a
Location to poll, so no client ever hangs on a long queue.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from comfyapi.jobs.v1 import job_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as jobs_pb
from gateway.api.events import TERMINAL
from gateway.api.jobs import CREATE_DOC, ERRORS, JOBS_WRITE
from gateway.auth.authenticator import Authenticated
from gateway.auth.dependencies import SECURED, require_scope
from gateway.job_views import REPLAYED_HEADER, job_json, submit

router = APIRouter(prefix="/api/v1", tags=["jobs"])


@router.post(
    "/generate",
    openapi_extra={**SECURED, **CREATE_DOC},
    summary="Run a preset or workflow; with wait=true, answer when it has finished, outputs included",
    status_code=202,
    responses={
        200: {"description": "The finished job (wait=true), with download links of its outputs"},
        202: {"description": "The job, still queued or running; poll its Location or stream its events"},
        **ERRORS,
    },
)
async def generate(
    request: Request,
    caller: Annotated[Authenticated, Depends(require_scope(JOBS_WRITE))],
    wait: bool = Query(False, description="Hold the request until the job finishes (bounded)."),
) -> JSONResponse:
    reply = await submit(request, caller.principal.subject)
    job = reply.job
    if wait and job.state not in TERMINAL:
        job = await _until_finished(request, job)
    headers = {"Location": f"/api/v1/{job.name}"}
    if reply.replayed:
        headers[REPLAYED_HEADER] = "true"
    code = 200 if job.state in TERMINAL else 202
    return JSONResponse(job_json(request, job), status_code=code, headers=headers)


async def _until_finished(request: Request, job: job_pb2.Job) -> job_pb2.Job:
    """The job once terminal, or as last seen when the wait limit passes first."""
    latest = job
    call: Any = request.app.state.backends.jobs.WatchJob(
        jobs_pb.WatchJobRequest(name=job.name, terminal_only=True)
    )

    async def follow() -> None:
        nonlocal latest
        async for reply in call:
            latest = reply.job

    try:
        await asyncio.wait_for(follow(), timeout=request.app.state.settings.generate_wait_seconds)
    except (TimeoutError, grpc.aio.AioRpcError):
        pass  # answered with the last state seen; the client polls from there
    finally:
        call.cancel()
    return latest
