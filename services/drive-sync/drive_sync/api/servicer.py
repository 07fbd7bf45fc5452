"""The gRPC face of the drive-sync service: thin servicers converting between protos and domain values."""

from __future__ import annotations

from comfyapi.drive_sync.v1 import drive_sync_service_pb2 as pb
from comfyapi.drive_sync.v1 import drive_sync_service_pb2_grpc as pb_grpc
from servicekit.server import Registration, fill_unimplemented

DESCRIPTOR = pb.DESCRIPTOR.services_by_name["DriveSyncService"]


@fill_unimplemented(DESCRIPTOR, "Drive connections and folder watching arrive with the drive-sync work")
class DriveSyncServiceServicer(pb_grpc.DriveSyncServiceServicer):
    """Answers the DriveSyncService contract."""


def registration() -> Registration:
    """The servicer with the generated function that mounts it on a server."""
    return Registration(
        DESCRIPTOR, DriveSyncServiceServicer(), pb_grpc.add_DriveSyncServiceServicer_to_server
    )
