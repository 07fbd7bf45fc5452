"""Conversion between jobs' domain values and their protos."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from comfyapi.jobs.v1 import job_pb2, jobs_service_pb2, preset_pb2, webhook_pb2
from jobs.api.presets import value_to_proto
from jobs.domain.jobs import ErrorReason, Input, Job, JobState, Priority, Webhook
from jobs.domain.presets import Value
from jobs.domain.requests import NewJob
from jobs.domain.webhooks import Delivery, DeliveryState, delivery_name
from jobs.service.webhooks import SecretView

STATES = {
    JobState.QUEUED: job_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: job_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: job_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: job_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: job_pb2.JOB_STATE_CANCELLED,
    JobState.EXPIRED: job_pb2.JOB_STATE_EXPIRED,
}
STATE_OF = {number: state for state, number in STATES.items()}
PRIORITIES = {
    Priority.LOW: job_pb2.JOB_PRIORITY_LOW,
    Priority.NORMAL: job_pb2.JOB_PRIORITY_NORMAL,
    Priority.HIGH: job_pb2.JOB_PRIORITY_HIGH,
}
PRIORITY_OF = {number: priority for priority, number in PRIORITIES.items()}
ERRORS = {reason: job_pb2.JobErrorReason.Value(f"JOB_ERROR_REASON_{reason.name}") for reason in ErrorReason}


def timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf timestamp, or None to leave the field unset."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def from_timestamp(value: Timestamp) -> datetime:
    """An aware UTC datetime of a protobuf timestamp."""
    return value.ToDatetime(tzinfo=UTC)


def _value(message: preset_pb2.ParameterValue) -> Value:
    kind = message.WhichOneof("kind")
    return getattr(message, kind) if kind else ""


def job_to_proto(job: Job) -> job_pb2.Job:
    """The job resource as clients see it."""
    if job.source.preset:
        source = job_pb2.JobSource(
            preset=job_pb2.PresetInvocation(
                preset=job.source.preset,
                version=job.source.preset_version,
                parameters={
                    k: m for k, v in job.source.parameters.items() if (m := value_to_proto(v)) is not None
                },
            )
        )
    else:
        source = job_pb2.JobSource(
            workflow=job_pb2.WorkflowSummary(
                sha256=job.source.workflow_sha256,
                node_count=job.source.node_count,
                output_node_ids=job.source.output_node_ids,
                node_types=job.source.node_types,
            )
        )
    message = job_pb2.Job(
        name=job.name,
        owner=job.owner,
        state=STATES[job.state],
        priority=PRIORITIES[job.priority],
        source=source,
        inputs=[
            job_pb2.JobInput(
                name=i.name,
                node_id=i.node_id,
                upload_key=i.storage_key,
                storage_key=i.storage_key,
                content_type=i.content_type,
                size_bytes=i.size_bytes,
            )
            for i in job.inputs
        ],
        labels=job.labels,
        deadline=timestamp(job.deadline),
        request_id=job.request_id,
        create_time=timestamp(job.create_time),
        update_time=timestamp(job.update_time),
        start_time=timestamp(job.start_time),
        end_time=timestamp(job.end_time),
        attempt_count=job.attempt_count,
        queue_position=job.queue_position,
        cancel_requested=job.cancel_requested,
        outputs=[job_pb2.Artifact(**a.__dict__) for a in job.outputs],
    )
    if job.webhook is not None:
        message.webhook.CopyFrom(job_pb2.WebhookConfig(url=job.webhook.url, events=job.webhook.events))
    if job.progress is not None and job.state is JobState.RUNNING:
        message.progress.CopyFrom(job_pb2.JobProgress(**job.progress.__dict__))
    if job.error is not None:
        e = job.error
        message.error.CopyFrom(
            job_pb2.JobError(
                reason=ERRORS[e.reason],
                message=e.message,
                node_id=e.node_id,
                node_type=e.node_type,
                exception_type=e.exception_type,
                retryable=e.retryable,
            )
        )
    return message


def new_job(request: jobs_service_pb2.CreateJobRequest, owner: str) -> NewJob:
    """The domain request of a CreateJob call (shape only; the domain checks the values)."""
    preset, version, parameters = "", 0, {}
    if request.WhichOneof("source") == "preset":
        preset = request.preset.preset.removeprefix("presets/")
        version = request.preset.version
        parameters = {k: _value(v) for k, v in request.preset.parameters.items()}
    webhook = None
    if request.HasField("webhook"):
        webhook = Webhook(request.webhook.url, tuple(request.webhook.events))
    inputs = tuple(
        Input(name=i.name, node_id=i.node_id, storage_key=i.upload_key, url=i.url) for i in request.inputs
    )
    return NewJob(
        owner=owner,
        request_id=request.request_id,
        preset=preset,
        preset_version=version,
        parameters=parameters,
        workflow_json=request.workflow_json,
        inputs=inputs,
        priority=PRIORITY_OF.get(request.priority, Priority.NORMAL),
        deadline=from_timestamp(request.deadline) if request.HasField("deadline") else None,
        webhook=webhook,
        labels=dict(request.labels),
    )


DELIVERY_STATES = {
    DeliveryState.PENDING: webhook_pb2.WEBHOOK_DELIVERY_STATE_PENDING,
    DeliveryState.SUCCEEDED: webhook_pb2.WEBHOOK_DELIVERY_STATE_SUCCEEDED,
    DeliveryState.RETRYING: webhook_pb2.WEBHOOK_DELIVERY_STATE_RETRYING,
    DeliveryState.FAILED: webhook_pb2.WEBHOOK_DELIVERY_STATE_FAILED,
}


def duration(value: timedelta | None) -> Duration | None:
    """A protobuf duration, or None to leave the field unset."""
    if value is None:
        return None
    message = Duration()
    message.FromTimedelta(value)
    return message


def render_event(event_id: str, event_type: str, event_time: datetime, job: Job) -> str:
    """The body of a webhook POST: the WebhookEvent in the proto3 JSON mapping, compact."""
    event = webhook_pb2.WebhookEvent(
        event_id=event_id, type=event_type, create_time=timestamp(event_time), job=job_to_proto(job)
    )
    return json.dumps(json_format.MessageToDict(event), separators=(",", ":"), ensure_ascii=False)


def delivery_to_proto(delivery: Delivery) -> webhook_pb2.WebhookDelivery:
    """A delivery as clients see it: the outcome of its latest attempt."""
    return webhook_pb2.WebhookDelivery(
        name=delivery.name,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        url=delivery.url,
        state=DELIVERY_STATES[delivery.state],
        attempt=delivery.attempt,
        http_status=delivery.http_status,
        latency=duration(delivery.latency),
        response_excerpt=delivery.response_excerpt,
        error_message=delivery.error_message,
        last_attempt_time=timestamp(delivery.last_attempt_time),
        next_attempt_time=timestamp(delivery.next_attempt_time if not delivery.state.finished else None),
        redelivery_of=delivery_name(delivery.job_id, delivery.redelivery_of)
        if delivery.redelivery_of
        else "",
        create_time=timestamp(delivery.create_time),
        update_time=timestamp(delivery.update_time),
    )


def secret_to_proto(view: SecretView) -> webhook_pb2.WebhookSecret:
    """The masked secret."""
    return webhook_pb2.WebhookSecret(
        masked_secret=view.masked,
        version=view.version,
        create_time=timestamp(view.create_time),
        previous_secret_expire_time=timestamp(view.previous_expire_time),
    )
