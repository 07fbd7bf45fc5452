"""The gRPC face of the jobs service: thin servicers converting between protos and domain values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from comfyapi.jobs.v1 import job_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as pb
from comfyapi.jobs.v1 import jobs_service_pb2_grpc as pb_grpc
from jobs.api.convert import STATE_OF, from_timestamp, job_to_proto, new_job
from jobs.api.presets import PREFIX, preset_to_proto
from jobs.domain.ids import is_job_id
from jobs.service.admission import Admission
from jobs.service.jobs import Jobs, parse_label_selector
from jobs.service.ports import JobFilter
from jobs.service.presets import PresetService
from servicekit import auth, errors
from servicekit.context import Principal
from servicekit.server import Registration, fill_unimplemented

DESCRIPTOR = pb.DESCRIPTOR.services_by_name["JobService"]
Context = grpc.aio.ServicerContext[Any, Any]
READ, WRITE = "jobs:read", "jobs:write"


def _preset_id(name: str) -> str:
    preset_id = name.removeprefix(PREFIX)
    if not name.startswith(PREFIX) or not preset_id or "/" in preset_id:
        raise errors.InvalidArgument(
            f"preset name must look like presets/{{preset_id}}, got {name!r}",
            reason="NAME_INVALID",
            violations=(errors.FieldViolation("name", "expected presets/{preset_id}"),),
        )
    return preset_id


def _job_id(name: str) -> str:
    job_id = name.removeprefix("jobs/")
    if not name.startswith("jobs/") or not is_job_id(job_id):
        raise errors.InvalidArgument(
            f"job name must look like jobs/{{uuid}}, got {name!r}",
            reason="NAME_INVALID",
            violations=(errors.FieldViolation("name", "expected jobs/{job_id}"),),
        )
    return job_id


def _caller(scope: str) -> Principal:
    caller = auth.require_principal()
    auth.require_scope(caller, scope)
    return caller


def _owner_of_new_job(requested: str) -> str:
    caller = _caller(WRITE)
    if not requested:
        if auth.is_service(caller):
            raise errors.InvalidArgument(
                "a service must name the owner",
                reason="FIELD_INVALID",
                violations=(errors.FieldViolation("owner", "required for services"),),
            )
        return caller.subject
    if not auth.is_service(caller):
        raise errors.PermissionDenied(
            "only internal services may create jobs for another owner", reason="OWNER_OVERRIDE_FORBIDDEN"
        )
    if not requested.startswith("users/") or "/" in requested.removeprefix("users/"):
        raise errors.InvalidArgument(
            "owner must look like users/{id}",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation("owner", "expected users/{id}"),),
        )
    return requested


def _filter(request: pb.ListJobsRequest) -> JobFilter:
    return JobFilter(
        states=tuple(STATE_OF[s] for s in request.states if s in STATE_OF),
        labels=parse_label_selector(request.label_selector),
        preset=request.preset,
        created_from=from_timestamp(request.create_time_start)
        if request.HasField("create_time_start")
        else None,
        created_before=from_timestamp(request.create_time_end)
        if request.HasField("create_time_end")
        else None,
    )


@fill_unimplemented(DESCRIPTOR, "webhook deliveries and signing secrets arrive with the webhooks work")
class JobServiceServicer(pb_grpc.JobServiceServicer):
    """Answers the JobService contract."""

    def __init__(self, presets: PresetService, admission: Admission, jobs: Jobs) -> None:
        self.presets = presets
        self.admission = admission
        self.jobs = jobs

    async def CreateJob(self, request: pb.CreateJobRequest, context: Context) -> pb.CreateJobResponse:
        job = await self.admission.create(new_job(request, _owner_of_new_job(request.owner)))
        return pb.CreateJobResponse(job=job_to_proto(job))

    async def GetJob(self, request: pb.GetJobRequest, context: Context) -> pb.GetJobResponse:
        job = await self.jobs.get(_caller(READ).subject, _job_id(request.name))
        return pb.GetJobResponse(job=job_to_proto(job))

    async def ListJobs(self, request: pb.ListJobsRequest, context: Context) -> pb.ListJobsResponse:
        owner = _caller(READ).subject
        page, token = await self.jobs.list(owner, _filter(request), request.page_size, request.page_token)
        return pb.ListJobsResponse(jobs=[job_to_proto(j) for j in page], next_page_token=token)

    async def CancelJob(self, request: pb.CancelJobRequest, context: Context) -> pb.CancelJobResponse:
        job = await self.jobs.cancel(_caller(WRITE).subject, _job_id(request.name))
        return pb.CancelJobResponse(job=job_to_proto(job))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: Context
    ) -> AsyncIterator[pb.WatchJobResponse]:
        owner = _caller(READ).subject
        stream = self.jobs.watch(
            owner, _job_id(request.name), request.after_sequence, request.include_previews
        )
        async for snapshot in stream:
            reply = pb.WatchJobResponse(sequence=snapshot.sequence, job=job_to_proto(snapshot.job))
            if snapshot.preview is not None:
                image, mime_type, node_id = snapshot.preview
                reply.preview.CopyFrom(job_pb2.JobPreview(image=image, mime_type=mime_type, node_id=node_id))
            yield reply

    async def GetPreset(self, request: pb.GetPresetRequest, context: Context) -> pb.GetPresetResponse:
        preset = self.presets.get(_preset_id(request.name), request.version)
        return pb.GetPresetResponse(preset=preset_to_proto(preset))

    async def ListPresets(self, request: pb.ListPresetsRequest, context: Context) -> pb.ListPresetsResponse:
        page, next_token = self.presets.list(request.page_size, request.page_token)
        return pb.ListPresetsResponse(presets=[preset_to_proto(p) for p in page], next_page_token=next_token)


def registration(presets: PresetService, admission: Admission, jobs: Jobs) -> Registration:
    """The servicer with the generated function that mounts it on a server."""
    return Registration(
        DESCRIPTOR, JobServiceServicer(presets, admission, jobs), pb_grpc.add_JobServiceServicer_to_server
    )
