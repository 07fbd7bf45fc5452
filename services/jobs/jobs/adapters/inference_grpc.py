"""The inference context over gRPC: validate a workflow, run an attempt, cancel it.

Only this module knows the inference contract; it turns its events into the dispatcher's ExecutionEvents
and its errors into domain errors. A stream broken mid-attempt (an inference replica restarting) is
resumed by executing the same id again, which attaches to the running execution.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc

from comfyapi.inference.v1 import execution_pb2, validation_pb2
from comfyapi.inference.v1 import inference_service_pb2 as pb
from comfyapi.inference.v1 import inference_service_pb2_grpc as pb_grpc
from jobs.domain.jobs import Artifact, ErrorReason, Job, JobError, Progress
from jobs.service.ports import ExecutionEvent, ExecutionSpec, Validation
from servicekit import auth, context, errors, status
from servicekit.logging import get_logger

log = get_logger("jobs.inference")
SERVICE = auth.service_principal("jobs")
RESUME_ATTEMPTS = 5

_FAILURES = {
    execution_pb2.FAILURE_REASON_NODE_EXCEPTION: ErrorReason.NODE_FAILED,
    execution_pb2.FAILURE_REASON_WORKFLOW_REJECTED: ErrorReason.WORKFLOW_REJECTED,
    execution_pb2.FAILURE_REASON_INPUT_UNAVAILABLE: ErrorReason.INPUT_UNAVAILABLE,
    execution_pb2.FAILURE_REASON_OUTPUT_STORAGE_FAILED: ErrorReason.OUTPUT_STORAGE_FAILED,
    execution_pb2.FAILURE_REASON_BACKEND_LOST: ErrorReason.BACKEND_LOST,
    execution_pb2.FAILURE_REASON_OUT_OF_MEMORY: ErrorReason.OUT_OF_MEMORY,
}


def _artifact(item: execution_pb2.Artifact) -> Artifact:
    return Artifact(
        storage_key=item.storage_key,
        uri=item.uri,
        content_type=item.content_type,
        size_bytes=item.size_bytes,
        sha256=item.sha256,
        width=item.width,
        height=item.height,
        node_id=item.node_id,
        filename=item.filename,
    )


def to_event(event: execution_pb2.ExecuteEvent, current: Progress) -> ExecutionEvent | None:
    """The dispatcher's view of one inference event; None for events it does not act on."""
    kind = event.WhichOneof("event")
    if kind == "node_started":
        started = event.node_started
        return ExecutionEvent(
            "progress",
            progress=Progress(
                fraction=started.fraction,
                node_id=started.node_id,
                node_type=started.node_type,
                node_title=started.node_title,
            ),
        )
    if kind == "progress":
        step = event.progress
        return ExecutionEvent(
            "progress",
            progress=Progress(
                fraction=step.fraction,
                node_id=step.node_id,
                node_type=current.node_type,
                node_title=current.node_title,
                step=step.value,
                step_max=step.max,
            ),
        )
    if kind == "preview":
        return ExecutionEvent(
            "preview", preview=(event.preview.image, event.preview.mime_type, event.preview.node_id)
        )
    if kind == "output":
        return ExecutionEvent("output", artifacts=tuple(_artifact(a) for a in event.output.artifacts))
    if kind == "succeeded":
        return ExecutionEvent("succeeded", artifacts=tuple(_artifact(a) for a in event.succeeded.artifacts))
    if kind == "failed":
        failed = event.failed
        return ExecutionEvent(
            "failed",
            error=JobError(
                reason=_FAILURES.get(failed.reason, ErrorReason.INTERNAL),
                message=failed.message,
                node_id=failed.node_id,
                node_type=failed.node_type,
                exception_type=failed.exception_type,
                retryable=failed.retryable,
            ),
        )
    if kind == "cancelled":
        deadline = event.cancelled.reason == execution_pb2.CANCEL_REASON_DEADLINE_EXCEEDED
        return ExecutionEvent("cancelled", deadline_exceeded=deadline)
    return None


class GrpcInference:
    """Validator and Executor backed by InferenceService."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 30.0) -> None:
        self.stub = pb_grpc.InferenceServiceStub(channel)
        self.timeout = timeout

    async def validate(self, workflow_json: str, filenames: Sequence[str]) -> Validation:
        request = pb.ValidateWorkflowRequest(workflow_json=workflow_json, input_filenames=list(filenames))
        with context.bound(context.request_id(), SERVICE):
            try:
                reply = await self.stub.ValidateWorkflow(request, timeout=self.timeout)
            except grpc.aio.AioRpcError as exc:
                raise _unavailable(status.from_rpc_error(exc)) from None
        violations = tuple(
            (v.field or "workflow_json", v.message)
            for v in reply.violations
            if v.severity != validation_pb2.VIOLATION_SEVERITY_WARNING
        )
        return Validation(violations=violations, output_node_ids=tuple(reply.output_node_ids))

    async def cancel(self, execution_id: str) -> None:
        with context.bound(context.request_id(), SERVICE):
            try:
                await self.stub.Cancel(pb.CancelRequest(execution_id=execution_id), timeout=self.timeout)
            except grpc.aio.AioRpcError as exc:
                error = status.from_rpc_error(exc)
                if not isinstance(error, errors.NotFound):
                    raise _unavailable(error) from None

    async def execute(self, job: Job, spec: ExecutionSpec) -> AsyncIterator[ExecutionEvent]:
        request = pb.ExecuteRequest(
            execution_id=job.execution_id(),
            workflow_json=spec.workflow_json,
            inputs=[execution_pb2.InputFile(filename=f, storage_key=key) for f, key in spec.files],
            output_prefix=f"outputs/{job.owner.removeprefix('users/')}/{job.id}/{job.attempt_count}",
            new_execution=spec.new_execution,
        )
        if job.deadline is not None:
            request.deadline.FromDatetime(job.deadline)
        accepted, progress = False, Progress()
        for resume in range(RESUME_ATTEMPTS):
            with context.bound(context.request_id(), SERVICE):
                call = self.stub.Execute(request)  # the metadata is taken from the context here
            try:
                async for reply in call:
                    accepted = True
                    event = to_event(reply.event, progress)
                    if event is None:
                        continue
                    if event.progress is not None:
                        progress = event.progress
                    yield event
                return
            except grpc.aio.AioRpcError as exc:
                error = status.from_rpc_error(exc)
                if not accepted or not isinstance(error, errors.Unavailable):
                    raise error from None
                log.warning("execution.stream_broken", job=job.name, resume=resume + 1)
            await asyncio.sleep(min(2.0**resume, 10.0))
            request.new_execution = False  # the broken call may have submitted it: attach, never rerun
        raise errors.Unavailable(
            "the inference stream kept breaking", reason="BACKEND_UNAVAILABLE", retry_after=5.0
        )


def _unavailable(error: errors.DomainError) -> errors.DomainError:
    if isinstance(error, errors.Unavailable | errors.DeadlineExceeded | errors.Internal):
        return errors.Unavailable(
            "no inference backend answers; retry shortly",
            reason="BACKEND_UNAVAILABLE",
            retry_after=error.retry_after or 2.0,
        )
    return error
