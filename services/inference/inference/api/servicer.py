"""The gRPC face of the inference service: thin servicers converting between protos and domain values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from comfyapi.inference.v1 import inference_service_pb2 as pb
from comfyapi.inference.v1 import inference_service_pb2_grpc as pb_grpc
from inference.api import convert
from inference.service.backends import Backends
from inference.service.executions import Executions
from inference.service.validation import Validator
from servicekit.server import Registration, fill_unimplemented

DESCRIPTOR = pb.DESCRIPTOR.services_by_name["InferenceService"]


@fill_unimplemented(DESCRIPTOR, "not part of this deployment")
class InferenceServiceServicer(pb_grpc.InferenceServiceServicer):
    """Answers the InferenceService contract."""

    def __init__(self, executions: Executions, validator: Validator, backends: Backends) -> None:
        self.executions = executions
        self.validator = validator
        self.backends = backends

    async def Execute(self, request: pb.ExecuteRequest, context: Any) -> AsyncIterator[pb.ExecuteResponse]:
        events = await self.executions.execute(convert.execution_request(request))
        sequence = 0
        async for event in events:
            sequence += 1
            yield convert.event(sequence, event)

    async def Cancel(self, request: pb.CancelRequest, context: Any) -> pb.CancelResponse:
        outcome, backend = await self.executions.cancel(request.execution_id)
        return pb.CancelResponse(outcome=pb.CancelOutcome.Value(f"CANCEL_OUTCOME_{outcome}"), backend=backend)

    async def ValidateWorkflow(
        self, request: pb.ValidateWorkflowRequest, context: Any
    ) -> pb.ValidateWorkflowResponse:
        backend = request.backend.removeprefix("backends/") if request.backend else ""
        result = self.validator.validate(request.workflow_json, backend, list(request.input_filenames))
        return convert.validation(result)

    async def ListBackends(self, request: pb.ListBackendsRequest, context: Any) -> pb.ListBackendsResponse:
        states, token = self.backends.page(request.page_size, request.page_token)
        return pb.ListBackendsResponse(backends=[convert.backend(s) for s in states], next_page_token=token)

    async def GetBackend(self, request: pb.GetBackendRequest, context: Any) -> pb.GetBackendResponse:
        return pb.GetBackendResponse(backend=convert.backend(self.backends.get(request.name)))

    async def DrainBackend(self, request: pb.DrainBackendRequest, context: Any) -> pb.DrainBackendResponse:
        state = await self.backends.drain(request.name, request.reason)
        return pb.DrainBackendResponse(backend=convert.backend(state))

    async def UndrainBackend(
        self, request: pb.UndrainBackendRequest, context: Any
    ) -> pb.UndrainBackendResponse:
        state = await self.backends.undrain(request.name)
        return pb.UndrainBackendResponse(backend=convert.backend(state))

    async def ListNodeTypes(self, request: pb.ListNodeTypesRequest, context: Any) -> pb.ListNodeTypesResponse:
        page = await self.backends.node_types(
            request.parent,
            request.page_size,
            request.page_token,
            list(request.class_types),
            request.category_prefix,
        )
        return pb.ListNodeTypesResponse(
            node_types=[convert.node_type(page.backend_id, s) for s in page.nodes],
            next_page_token=page.next_page_token,
        )


def registration(executions: Executions, validator: Validator, backends: Backends) -> Registration:
    """The servicer with the generated function that mounts it on a server."""
    return Registration(
        DESCRIPTOR,
        InferenceServiceServicer(executions, validator, backends),
        pb_grpc.add_InferenceServiceServicer_to_server,
    )
