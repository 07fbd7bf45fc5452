"""`POST /api/v1/generate`: submit and, with `wait=true`, hold the request until the job ends.

The wait is bounded by a setting and spent inside the jobs service's CreateJob (one call, no separate watch);
a job still unfinished then is answered 202 with its current state and a Location to poll, so no client
ever hangs on a long queue.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.api.events import TERMINAL
from gateway.api.jobs import CREATE_DOC, ERRORS, JOBS_WRITE
from gateway.auth.authenticator import Authenticated
from gateway.auth.dependencies import SECURED, require_scope
from gateway.job_views import REPLAYED_HEADER, job_json, submit

router = APIRouter(prefix="/api/v1", tags=["jobs"])
MAX_WAIT_SECONDS = 600.0  # the longest CreateJob holds a call (CreateJobRequest.wait)


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
    wait_seconds = min(request.app.state.settings.generate_wait_seconds, MAX_WAIT_SECONDS) if wait else 0.0
    reply = await submit(request, caller.principal.subject, wait_seconds)
    job = reply.job
    headers = {"Location": f"/api/v1/{job.name}"}
    if reply.replayed:
        headers[REPLAYED_HEADER] = "true"
    code = 200 if job.state in TERMINAL else 202
    return JSONResponse(job_json(request, job), status_code=code, headers=headers)
