"""The gRPC face of the jobs service: thin servicers converting between protos and domain values."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from comfyapi.jobs.v1 import job_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as pb
from comfyapi.jobs.v1 import jobs_service_pb2_grpc as pb_grpc
from jobs.api.convert import (
    STATE_OF,
    delivery_to_proto,
    from_timestamp,
    job_to_proto,
    new_job,
    secret_to_proto,
)
from jobs.api.presets import PREFIX, preset_to_proto
from jobs.domain.ids import is_job_id
from jobs.service.admission import Admission
from jobs.service.jobs import Jobs, check_wait, parse_label_selector
from jobs.service.ports import JobFilter
from jobs.service.presets import PresetService
from jobs.service.webhooks import Webhooks, WebhookSecrets
from servicekit import auth, errors
from servicekit.context import Principal
from servicekit.server import Registration

DESCRIPTOR = pb.DESCRIPTOR.services_by_name["JobService"]
Context = grpc.aio.ServicerContext[Any, Any]
READ, WRITE, WEBHOOKS = "jobs:read", "jobs:write", "webhooks:manage"


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


def _delivery_ids(name: str) -> tuple[str, str]:
    job_part, sep, delivery_id = name.partition("/webhookDeliveries/")
    job_id = job_part.removeprefix("jobs/")
    if not sep or not job_part.startswith("jobs/") or not is_job_id(job_id) or not is_job_id(delivery_id):
        raise errors.InvalidArgument(
            f"delivery name must look like jobs/{{job_id}}/webhookDeliveries/{{delivery_id}}, got {name!r}",
            reason="NAME_INVALID",
            violations=(errors.FieldViolation("name", "expected jobs/{job_id}/webhookDeliveries/{id}"),),
        )
    return job_id, delivery_id


def _account_owner() -> str:
    """The user whose webhook secret is managed; services have no account of their own."""
    caller = auth.require_user()
    auth.require_scope(caller, WEBHOOKS)
    return caller.subject


class JobServiceServicer(pb_grpc.JobServiceServicer):
    """Answers the JobService contract."""

    def __init__(
        self,
        presets: PresetService,
        admission: Admission,
        jobs: Jobs,
        webhooks: Webhooks,
        secrets: WebhookSecrets,
    ) -> None:
        self.presets = presets
        self.admission = admission
        self.jobs = jobs
        self.webhooks = webhooks
        self.secrets = secrets

    async def CreateJob(self, request: pb.CreateJobRequest, context: Context) -> pb.CreateJobResponse:
        started = self.admission.clock()
        wait = check_wait(request.wait.ToTimedelta().total_seconds())
        job = await self.admission.create(new_job(request, _owner_of_new_job(request.owner)))
        # A job created before this call began can only be the original of a replayed request_id.
        replayed = bool(request.request_id) and job.create_time < started
        job = await self.jobs.outcome(job, wait)
        return pb.CreateJobResponse(job=job_to_proto(job), replayed=replayed)

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
            owner,
            _job_id(request.name),
            request.after_sequence,
            request.include_previews,
            request.terminal_only,
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

    async def GetPresetPreview(
        self, request: pb.GetPresetPreviewRequest, context: Context
    ) -> pb.GetPresetPreviewResponse:
        image, mime_type = self.presets.preview(_preset_id(request.name), request.version)
        return pb.GetPresetPreviewResponse(
            image=image, mime_type=mime_type, sha256=hashlib.sha256(image).hexdigest()
        )

    async def ListPresets(self, request: pb.ListPresetsRequest, context: Context) -> pb.ListPresetsResponse:
        page, next_token = self.presets.list(request.page_size, request.page_token)
        return pb.ListPresetsResponse(presets=[preset_to_proto(p) for p in page], next_page_token=next_token)

    async def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: Context
    ) -> pb.ListWebhookDeliveriesResponse:
        owner = _caller(READ).subject
        page, token = await self.webhooks.list(
            owner, _job_id(request.parent), request.page_size, request.page_token
        )
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in page], next_page_token=token
        )

    async def RedeliverWebhook(
        self, request: pb.RedeliverWebhookRequest, context: Context
    ) -> pb.RedeliverWebhookResponse:
        owner = _caller(WRITE).subject
        job_id, delivery_id = _delivery_ids(request.name)
        delivery = await self.webhooks.redeliver(owner, job_id, delivery_id, request.request_id)
        return pb.RedeliverWebhookResponse(delivery=delivery_to_proto(delivery))

    async def GetWebhookSecret(
        self, request: pb.GetWebhookSecretRequest, context: Context
    ) -> pb.GetWebhookSecretResponse:
        return pb.GetWebhookSecretResponse(secret=secret_to_proto(await self.secrets.get(_account_owner())))

    async def RotateWebhookSecret(
        self, request: pb.RotateWebhookSecretRequest, context: Context
    ) -> pb.RotateWebhookSecretResponse:
        owner = _account_owner()
        grace = (
            request.previous_secret_grace_period.ToTimedelta()
            if request.HasField("previous_secret_grace_period")
            else None
        )
        view, plaintext = await self.secrets.rotate(owner, request.request_id, grace)
        return pb.RotateWebhookSecretResponse(secret=secret_to_proto(view), plaintext_secret=plaintext)


def registration(
    presets: PresetService, admission: Admission, jobs: Jobs, webhooks: Webhooks, secrets: WebhookSecrets
) -> Registration:
    """The servicer with the generated function that mounts it on a server."""
    return Registration(
        DESCRIPTOR,
        JobServiceServicer(presets, admission, jobs, webhooks, secrets),
        pb_grpc.add_JobServiceServicer_to_server,
    )
