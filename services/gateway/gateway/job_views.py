"""What the job routes share: submitting a job body, rendering a job as JSON with download links, and
translating JobService errors into the REST vocabulary."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
from fastapi import Request
from google.protobuf.json_format import MessageToDict

from comfyapi.jobs.v1 import job_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as jobs_pb
from gateway.job_body import JobBody, create_request, load_json, validated
from gateway.uploads import Uploads
from servicekit import errors, status

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# JobService's field names that REST spells differently: the workflow, and the idempotency key (a header).
FIELD_RENAMES = (("workflow_json", "workflow"), ("request_id", "Idempotency-Key"))
JOB_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def timeout(request: Request) -> float:
    return float(request.app.state.settings.backend_timeout_seconds)


def to_json(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def job_json(request: Request, job: job_pb2.Job) -> dict[str, Any]:
    """The job in the proto3 JSON mapping, each output with a short-lived `download_url`."""
    body = to_json(job)
    files = request.app.state.files
    base_url = str(request.base_url)
    for rendered, artifact in zip(body.get("outputs", []), job.outputs, strict=True):
        rendered["download_url"] = files.download_url(artifact.storage_key, artifact.filename, base_url)
    return body


def rest_error(exc: grpc.aio.AioRpcError) -> errors.DomainError:
    """The domain error of a failed call, with field names as the REST body spells them."""
    error = status.from_rpc_error(exc)
    renamed = []
    for v in error.violations:
        field = v.field
        for old, new in FIELD_RENAMES:
            if field == old or field.startswith((f"{old}[", f"{old}.")):
                field = new + field[len(old) :]
        renamed.append(errors.FieldViolation(field, v.description))
    error.violations = tuple(renamed)
    return error


async def submit(request: Request, owner: str, wait_seconds: float = 0.0) -> jobs_pb.CreateJobResponse:
    """Parses the body, binds its inputs to stored uploads and creates the job; with `wait_seconds`, the
    answer comes when the job ended or that wait ran out."""
    raw = await request.body()
    body: JobBody = validated(JobBody, load_json(raw))
    idempotency_key = request.headers.get(IDEMPOTENCY_HEADER, "")
    message = create_request(body, idempotency_key)
    uploads: Uploads = request.app.state.uploads
    for index, item in enumerate(body.inputs):
        if item.url:
            key = await uploads.from_url(owner, item.url, f"inputs[{index}].url", idempotency_key)
            message.inputs[index].upload_key = key
        elif item.upload_id:
            key = await uploads.key_of(owner, item.upload_id, f"inputs[{index}].upload_id")
            message.inputs[index].upload_key = key
    if wait_seconds:
        message.wait.FromTimedelta(timedelta(seconds=wait_seconds))
    try:
        reply: jobs_pb.CreateJobResponse = await request.app.state.backends.jobs.CreateJob(
            message, timeout=timeout(request) + wait_seconds
        )
    except grpc.aio.AioRpcError as exc:
        raise rest_error(exc) from None
    return reply
