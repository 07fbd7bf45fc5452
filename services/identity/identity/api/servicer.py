"""The gRPC face of the identity service: thin servicers converting between protos and domain values."""

from __future__ import annotations

from comfyapi.identity.v1 import identity_service_pb2 as pb
from comfyapi.identity.v1 import identity_service_pb2_grpc as pb_grpc
from servicekit.server import Registration, fill_unimplemented

DESCRIPTOR = pb.DESCRIPTOR.services_by_name["IdentityService"]


@fill_unimplemented(
    DESCRIPTOR, "Google sign-in, sessions, API keys and the token vault arrive with the identity work"
)
class IdentityServiceServicer(pb_grpc.IdentityServiceServicer):
    """Answers the IdentityService contract."""


def registration() -> Registration:
    """The servicer with the generated function that mounts it on a server."""
    return Registration(DESCRIPTOR, IdentityServiceServicer(), pb_grpc.add_IdentityServiceServicer_to_server)
