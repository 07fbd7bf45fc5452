"""The gRPC face of the inference service: thin servicers converting between protos and domain values."""

from __future__ import annotations

from comfyapi.inference.v1 import inference_service_pb2 as pb
from comfyapi.inference.v1 import inference_service_pb2_grpc as pb_grpc
from servicekit.server import Registration, fill_unimplemented

DESCRIPTOR = pb.DESCRIPTOR.services_by_name["InferenceService"]


@fill_unimplemented(DESCRIPTOR, "the ComfyUI backend pool arrives with the inference work")
class InferenceServiceServicer(pb_grpc.InferenceServiceServicer):
    """Answers the InferenceService contract."""


def registration() -> Registration:
    """The servicer with the generated function that mounts it on a server."""
    return Registration(
        DESCRIPTOR, InferenceServiceServicer(), pb_grpc.add_InferenceServiceServicer_to_server
    )
