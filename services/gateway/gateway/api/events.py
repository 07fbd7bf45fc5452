"""Server-sent events of one job, relayed from JobService.WatchJob.

Each event carries the job's sequence number as its `id`, the job's state (or `progress` for a change while
it keeps running) as its `event`, and the whole job as JSON in `data`. A client that reconnects with
`Last-Event-ID` resumes right after the last event it saw, losing none: WatchJob replays from that sequence.
A comment line goes out every few seconds of silence so proxies keep the connection open, and the stream
ends after the terminal snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from comfyapi.jobs.v1 import job_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as jobs_pb
from gateway.api.jobs import ERRORS, JOBS_READ
from gateway.auth.authenticator import Authenticated
from gateway.auth.dependencies import SECURED, require_scope
from gateway.errors import violation
from gateway.job_views import JOB_ID_PATTERN, job_json, rest_error
from servicekit import errors

router = APIRouter(prefix="/api/v1", tags=["jobs"])
END = object()
RECONNECT_MS = 1000
TERMINAL = frozenset(
    {
        job_pb2.JOB_STATE_SUCCEEDED,
        job_pb2.JOB_STATE_FAILED,
        job_pb2.JOB_STATE_CANCELLED,
        job_pb2.JOB_STATE_EXPIRED,
    }
)


def _resume_point(header: str | None, query: int) -> int:
    if header is None or header == "":
        return query
    if not header.isdigit():
        raise errors.InvalidArgument(
            "Last-Event-ID must be the id of an event this stream sent",
            reason="LAST_EVENT_ID_INVALID",
            violations=violation("Last-Event-ID", "a non-negative integer"),
        )
    return max(int(header), query)


def event_name(job: job_pb2.Job, previous_state: int | None) -> str:
    """`progress` for a change while the job keeps running, else its state in lower case."""
    if job.state == job_pb2.JOB_STATE_RUNNING and previous_state == job_pb2.JOB_STATE_RUNNING:
        return "progress"
    return job_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()


def frame(event_id: int | None, event: str, data: dict[str, Any]) -> bytes:
    """One SSE event; JSON never contains a raw newline, so `data` is one line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get(
    "/jobs/{job_id}/events",
    openapi_extra=SECURED,
    summary="Stream a job's changes as server-sent events until it finishes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
)
async def job_events(
    request: Request,
    _: Annotated[Authenticated, Depends(require_scope(JOBS_READ))],
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)],
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after_sequence: int = Query(0, ge=0, description="Resume after this event id (as Last-Event-ID does)."),
) -> StreamingResponse:
    after = _resume_point(last_event_id, after_sequence)
    call = request.app.state.backends.jobs.WatchJob(
        jobs_pb.WatchJobRequest(name=f"jobs/{job_id}", after_sequence=after)
    )
    queue: asyncio.Queue[Any] = asyncio.Queue()
    pump = asyncio.create_task(_pump(call, queue))
    heartbeat = request.app.state.settings.sse_heartbeat_seconds
    try:
        first = await asyncio.wait_for(queue.get(), timeout=min(heartbeat, 5.0))
    except TimeoutError:
        first = None  # nothing new yet; the stream starts with a heartbeat instead
    if isinstance(first, grpc.aio.AioRpcError):
        raise rest_error(first)
    return StreamingResponse(
        _events(request, call, pump, queue, first, heartbeat),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _pump(call: Any, queue: asyncio.Queue[Any]) -> None:
    try:
        async for reply in call:
            await queue.put(reply)
        await queue.put(END)
    except grpc.aio.AioRpcError as exc:
        await queue.put(exc)


async def _events(
    request: Request, call: Any, pump: asyncio.Task[None], queue: asyncio.Queue[Any], first: Any, beat: float
) -> AsyncIterator[bytes]:
    previous: int | None = None
    try:
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        item = first
        while True:
            if item is None:
                yield b": keep-alive\n\n"
            elif item is END:
                return
            elif isinstance(item, grpc.aio.AioRpcError):
                error = rest_error(item)
                yield frame(
                    None, "error", {"status": error.code, "reason": error.reason, "message": error.message}
                )
                return
            else:
                yield frame(item.sequence, event_name(item.job, previous), job_json(request, item.job))
                previous = item.job.state
            try:
                item = await asyncio.wait_for(queue.get(), timeout=beat)
            except TimeoutError:
                item = None
    finally:
        call.cancel()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
