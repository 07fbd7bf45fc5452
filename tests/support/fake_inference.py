"""A scripted InferenceService on a real gRPC port, for testing the jobs context on its own.

It stands in for the real inference service (tested against the local ComfyUI runtime elsewhere) so that
jobs tests can hold an execution open, fail it, lose it, or watch it being cancelled, deterministically. It
keeps the promises jobs relies on: executing a known id attaches instead of running twice, and Cancel ends the
stream with a CancelledEvent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from comfyapi.inference.v1 import execution_pb2, validation_pb2
from comfyapi.inference.v1 import inference_service_pb2 as pb
from comfyapi.inference.v1 import inference_service_pb2_grpc as pb_grpc
from servicekit import errors
from servicekit.server import Registration, ServiceApp

DESCRIPTOR: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["InferenceService"]


@dataclass
class Execution:
    """What the fake knows of one execution id."""

    request: pb.ExecuteRequest
    release: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: str = "succeeded"  # succeeded, failed, retryable, lost
    streams: int = 0


class FakeInference(pb_grpc.InferenceServiceServicer):
    """Runs nothing: each execution waits for `release` (or a cancel), then ends as its `outcome` says."""

    def __init__(self) -> None:
        self.executions: dict[str, Execution] = {}
        self.hold = False
        self.outcome = "succeeded"
        self.started = asyncio.Condition()
        self.unavailable = False

    def execution(self, execution_id: str) -> Execution:
        return self.executions[execution_id]

    async def wait_started(self, count: int = 1) -> None:
        async with self.started:
            await self.started.wait_for(lambda: len(self.executions) >= count)

    async def ValidateWorkflow(
        self, request: pb.ValidateWorkflowRequest, context: Any
    ) -> pb.ValidateWorkflowResponse:
        workflow = json.loads(request.workflow_json)
        violations = [
            validation_pb2.WorkflowViolation(
                reason=validation_pb2.WORKFLOW_VIOLATION_REASON_UNKNOWN_NODE_TYPE,
                severity=validation_pb2.VIOLATION_SEVERITY_ERROR,
                node_id=node_id,
                node_type=node["class_type"],
                message=f"node {node_id}: unknown node type {node['class_type']}",
                field=f'workflow_json["{node_id}"]',
            )
            for node_id, node in workflow.items()
            if node["class_type"].startswith("Unknown")
        ]
        outputs = sorted(n for n, node in workflow.items() if node["class_type"] == "SaveImage")
        return pb.ValidateWorkflowResponse(
            valid=not violations, violations=violations, output_node_ids=outputs
        )

    async def Execute(self, request: pb.ExecuteRequest, context: Any) -> AsyncIterator[pb.ExecuteResponse]:
        if self.unavailable:
            raise errors.Unavailable("no backend", reason="BACKEND_UNAVAILABLE", retry_after=0.2)
        execution = self.executions.get(request.execution_id)
        attached = execution is not None
        if execution is None:
            execution = Execution(request, outcome=self.outcome)
            if not self.hold:
                execution.release.set()
            async with self.started:
                self.executions[request.execution_id] = execution
                self.started.notify_all()
        execution.streams += 1
        yield event(
            accepted=execution_pb2.AcceptedEvent(backend="backends/fake", prompt_id="p", attached=attached)
        )
        yield event(
            node_started=execution_pb2.NodeStartedEvent(node_id="2", node_type="ImageInvert", fraction=0.5)
        )
        waiters = [
            asyncio.ensure_future(execution.release.wait()),
            asyncio.ensure_future(execution.cancelled.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the caller goes away mid-wait
            for waiter in waiters:
                waiter.cancel()
        if execution.cancelled.is_set():
            yield event(cancelled=execution_pb2.CancelledEvent(reason=execution_pb2.CANCEL_REASON_REQUESTED))
            return
        if execution.outcome == "lost":
            raise errors.Unavailable("stream broken", reason="SERVER_SHUTTING_DOWN")
        if execution.outcome in ("failed", "retryable"):
            yield event(
                failed=execution_pb2.FailedEvent(
                    reason=execution_pb2.FAILURE_REASON_NODE_EXCEPTION
                    if execution.outcome == "failed"
                    else execution_pb2.FAILURE_REASON_BACKEND_LOST,
                    message="boom",
                    node_id="2",
                    node_type="ImageInvert",
                    retryable=execution.outcome == "retryable",
                )
            )
            return
        artifact = execution_pb2.Artifact(
            storage_key=f"{request.output_prefix}/3/out.png",
            uri="file:///x",
            content_type="image/png",
            size_bytes=3,
            sha256="ab",
            width=1,
            height=1,
            node_id="3",
            filename="out.png",
        )
        yield event(output=execution_pb2.OutputEvent(node_id="3", artifacts=[artifact]))
        yield event(succeeded=execution_pb2.SucceededEvent(artifacts=[artifact]))

    async def Cancel(self, request: pb.CancelRequest, context: Any) -> pb.CancelResponse:
        execution = self.executions.get(request.execution_id)
        if execution is None:
            raise errors.NotFound("no such execution", reason="EXECUTION_NOT_FOUND")
        execution.cancelled.set()
        return pb.CancelResponse()


def event(**kind: Any) -> pb.ExecuteResponse:
    return pb.ExecuteResponse(event=execution_pb2.ExecuteEvent(**kind))


def fake_inference_app(fake: FakeInference) -> ServiceApp:
    """The fake as a servable app."""
    return ServiceApp(
        name="fake-inference",
        registrations=[Registration(DESCRIPTOR, fake, pb_grpc.add_InferenceServiceServicer_to_server)],
    )
