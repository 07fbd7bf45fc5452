"""The gRPC face of the jobs service: thin servicers converting between protos and domain values."""

from __future__ import annotations

from typing import Any

import grpc

from comfyapi.jobs.v1 import jobs_service_pb2 as pb
from comfyapi.jobs.v1 import jobs_service_pb2_grpc as pb_grpc
from jobs.api.presets import PREFIX, preset_to_proto
from jobs.service.presets import PresetService
from servicekit import errors
from servicekit.server import Registration, fill_unimplemented

DESCRIPTOR = pb.DESCRIPTOR.services_by_name["JobService"]
Context = grpc.aio.ServicerContext[Any, Any]


def _preset_id(name: str) -> str:
    preset_id = name.removeprefix(PREFIX)
    if not name.startswith(PREFIX) or not preset_id or "/" in preset_id:
        raise errors.InvalidArgument(
            f"preset name must look like presets/{{preset_id}}, got {name!r}",
            reason="INVALID_RESOURCE_NAME",
            violations=(errors.FieldViolation("name", "expected presets/{preset_id}"),),
        )
    return preset_id


@fill_unimplemented(DESCRIPTOR, "jobs, the durable queue and webhooks arrive with the jobs API work")
class JobServiceServicer(pb_grpc.JobServiceServicer):
    """Answers the JobService contract."""

    def __init__(self, presets: PresetService) -> None:
        self.presets = presets

    async def GetPreset(self, request: pb.GetPresetRequest, context: Context) -> pb.GetPresetResponse:
        preset = self.presets.get(_preset_id(request.name), request.version)
        return pb.GetPresetResponse(preset=preset_to_proto(preset))

    async def ListPresets(self, request: pb.ListPresetsRequest, context: Context) -> pb.ListPresetsResponse:
        page, next_token = self.presets.list(request.page_size, request.page_token)
        return pb.ListPresetsResponse(presets=[preset_to_proto(p) for p in page], next_page_token=next_token)


def registration(presets: PresetService) -> Registration:
    """The servicer with the generated function that mounts it on a server."""
    return Registration(DESCRIPTOR, JobServiceServicer(presets), pb_grpc.add_JobServiceServicer_to_server)
