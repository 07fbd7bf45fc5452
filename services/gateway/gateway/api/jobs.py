"""REST routes of jobs: create (idempotent), list, get and cancel, translated to JobService calls.

JobService owns every rule (ownership, validation, quota, idempotency); these routes parse, bind uploaded or
fetched inputs, call one RPC and render the job with download links for its outputs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from comfyapi.jobs.v1 import job_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as jobs_pb
from gateway.auth.authenticator import Authenticated
from gateway.auth.dependencies import SECURED, require_scope
from gateway.errors import violation
from gateway.job_body import timestamp
from gateway.job_views import (
    IDEMPOTENCY_HEADER,
    JOB_ID_PATTERN,
    REPLAYED_HEADER,
    job_json,
    submit,
    timeout,
)
from servicekit import errors
from servicekit.logging import get_logger

router = APIRouter(prefix="/api/v1", tags=["jobs"])
log = get_logger("gateway.jobs")
JOBS_READ, JOBS_WRITE = "jobs:read", "jobs:write"
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad input; `details.field_violations` names each field or node"},
    401: {"description": "No valid API key or session"},
    403: {"description": "The credential lacks a scope, or the anti-CSRF token is missing"},
    404: {"description": "No such job of yours"},
    413: {"description": "The request body is over the size limit"},
    429: {"description": "Rate limit or quota exceeded; see Retry-After"},
}
Reader = Annotated[Authenticated, Depends(require_scope(JOBS_READ))]
Writer = Annotated[Authenticated, Depends(require_scope(JOBS_WRITE))]
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The id in the job's name `jobs/{id}`.")]
STATES = {
    name.removeprefix("JOB_STATE_").lower(): number
    for name, number in job_pb2.JobState.items()
    if number != job_pb2.JOB_STATE_UNSPECIFIED
}
CREATE_DOC = {
    "parameters": [
        {
            "name": IDEMPOTENCY_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
            "description": "Repeat a request safely: the same key and body return the original job (200, "
            f"`{REPLAYED_HEADER}: true`); the same key with another body is a 409.",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobBody"}}},
    },
}


@router.post(
    "/jobs",
    openapi_extra={**SECURED, **CREATE_DOC},
    summary="Submit a preset or a ComfyUI workflow as a job",
    status_code=201,
    responses={201: {"description": "The new job, QUEUED"}, 200: {"description": "A replay"}, **ERRORS},
)
async def create_job(request: Request, caller: Writer) -> JSONResponse:
    reply = await submit(request, caller.principal.subject)
    job = reply.job
    log.info("job.submitted", job=job.name, replayed=reply.replayed)
    headers = {"Location": f"/api/v1/{job.name}"}
    if reply.replayed:
        headers[REPLAYED_HEADER] = "true"
    return JSONResponse(job_json(request, job), status_code=200 if reply.replayed else 201, headers=headers)


def _states(values: list[str]) -> list[job_pb2.JobState.ValueType]:
    found: list[job_pb2.JobState.ValueType] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower().removeprefix("job_state_")
            if name not in STATES:
                raise errors.InvalidArgument(
                    f"unknown state {part!r}; use {', '.join(STATES)}",
                    reason="FILTER_INVALID",
                    violations=violation("state", f"one of {', '.join(STATES)}"),
                )
            found.append(STATES[name])
    return found


@router.get("/jobs", openapi_extra=SECURED, summary="List your jobs, newest first", responses=ERRORS)
async def list_jobs(
    request: Request,
    _: Reader,
    state: Annotated[list[str], Query(description="Only these states, e.g. `queued,running`.")] = [],  # noqa: B006
    label_selector: str = Query("", max_length=2000, description="`k=v`, `k!=v` or `k`, comma-separated."),
    preset: str = Query("", max_length=120, description="Only jobs of this preset, e.g. `cinematic`."),
    created_after: Annotated[datetime | None, Query(description="RFC 3339; created at or after.")] = None,
    created_before: Annotated[datetime | None, Query(description="RFC 3339; created before.")] = None,
    page_size: int = Query(0, ge=0, le=100, description="Jobs per page; 0 means 50."),
    page_token: str = Query("", max_length=2000, description="next_page_token of the previous page."),
) -> dict[str, Any]:
    message = jobs_pb.ListJobsRequest(
        page_size=page_size,
        page_token=page_token,
        states=_states(state),
        label_selector=label_selector,
        preset=preset if not preset or preset.startswith("presets/") else f"presets/{preset}",
    )
    for field, value in (("create_time_start", created_after), ("create_time_end", created_before)):
        if value is not None:
            if value.tzinfo is None:
                raise errors.InvalidArgument(
                    "times need a time zone", reason="FILTER_INVALID", violations=violation(field, "add Z")
                )
            getattr(message, field).CopyFrom(timestamp(value))
    reply = await request.app.state.backends.jobs.ListJobs(message, timeout=timeout(request))
    return {"jobs": [job_json(request, j) for j in reply.jobs], "next_page_token": reply.next_page_token}


@router.get("/jobs/{job_id}", openapi_extra=SECURED, summary="Get one of your jobs", responses=ERRORS)
async def get_job(request: Request, _: Reader, job_id: JobId) -> dict[str, Any]:
    reply = await request.app.state.backends.jobs.GetJob(
        jobs_pb.GetJobRequest(name=f"jobs/{job_id}"), timeout=timeout(request)
    )
    return job_json(request, reply.job)


@router.post(
    "/jobs/{job_id}/cancel",
    openapi_extra=SECURED,
    summary="Cancel a job: queued jobs never run, running ones are interrupted",
    responses={400: {"description": "The job already finished (JOB_ALREADY_FINISHED)"}, **ERRORS},
)
async def cancel_job(request: Request, _: Writer, job_id: JobId) -> dict[str, Any]:
    reply = await request.app.state.backends.jobs.CancelJob(
        jobs_pb.CancelJobRequest(name=f"jobs/{job_id}"), timeout=timeout(request)
    )
    log.info("job.cancel_requested", job=reply.job.name)
    return job_json(request, reply.job)
