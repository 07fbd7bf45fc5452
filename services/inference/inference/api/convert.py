"""Conversion between protos and domain values; the only place besides the servicer that imports protos."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf import duration_pb2, timestamp_pb2

from comfyapi.inference.v1 import backend_pb2, execution_pb2, node_type_pb2, validation_pb2
from comfyapi.inference.v1 import inference_service_pb2 as pb
from inference.domain import events as ev
from inference.domain.backends import BackendState, Health, Kind
from inference.domain.catalog import NodeSpec
from inference.domain.executions import ExecutionRequest, InputFile
from inference.domain.violations import Severity, Violation
from inference.service.validation import ValidationResult


def _ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(max(0.0, seconds) * 1e9))
    return value


def execution_request(request: pb.ExecuteRequest) -> ExecutionRequest:
    """The domain request of an ExecuteRequest."""
    deadline = request.deadline.ToDatetime(tzinfo=UTC) if request.HasField("deadline") else None
    backend = request.backend.removeprefix("backends/") if request.backend else ""
    return ExecutionRequest(
        execution_id=request.execution_id,
        workflow_json=request.workflow_json,
        output_prefix=request.output_prefix,
        inputs=tuple(InputFile(i.filename, i.storage_key) for i in request.inputs),
        checkpoint_hint=request.checkpoint_hint,
        backend_id=backend,
        previews=request.preview.enabled,
        previews_per_second=request.preview.max_per_second,
        include_temp_outputs=request.include_temp_outputs,
        deadline=deadline,
        new_execution=request.new_execution,
    )


def _timing(timing: ev.Timing) -> execution_pb2.ExecutionTiming:
    start, end, submit = timing.start_time, timing.end_time, timing.submit_time
    queued = ((start or end) - submit).total_seconds() if submit else 0.0
    return execution_pb2.ExecutionTiming(
        submit_time=_ts(submit),
        start_time=_ts(start),
        end_time=_ts(end),
        queue_duration=_duration(queued),
        run_duration=_duration((end - start).total_seconds() if start else 0.0),
    )


def _artifact(a: ev.Artifact) -> execution_pb2.Artifact:
    return execution_pb2.Artifact(
        storage_key=a.storage_key,
        uri=a.uri,
        content_type=a.content_type,
        size_bytes=a.size_bytes,
        sha256=a.sha256,
        width=a.width,
        height=a.height,
        node_id=a.node_id,
        filename=a.filename,
        temporary=a.temporary,
    )


def event(sequence: int, value: ev.Event) -> pb.ExecuteResponse:
    """One stream message."""
    message = execution_pb2.ExecuteEvent(sequence=sequence, time=_ts(datetime.now(UTC)))
    match value:
        case ev.Accepted():
            message.accepted.CopyFrom(
                execution_pb2.AcceptedEvent(
                    backend=value.backend, prompt_id=value.prompt_id, attached=value.attached
                )
            )
        case ev.Queued():
            message.queued.position = value.position
        case ev.Started():
            message.started.CopyFrom(
                execution_pb2.StartedEvent(
                    cached_node_ids=value.cached_node_ids, nodes_to_run=value.nodes_to_run
                )
            )
        case ev.NodeStarted():
            message.node_started.CopyFrom(
                execution_pb2.NodeStartedEvent(
                    node_id=value.node_id, node_type=value.node_type, node_title=value.node_title,
                    fraction=value.fraction,
                )
            )  # fmt: skip
        case ev.Progress():
            message.progress.CopyFrom(
                execution_pb2.ProgressEvent(
                    node_id=value.node_id, value=value.value, max=value.max, fraction=value.fraction
                )
            )
        case ev.Preview():
            message.preview.CopyFrom(
                execution_pb2.PreviewEvent(
                    node_id=value.node_id, mime_type=value.mime_type, image=value.image
                )
            )
        case ev.Output():
            message.output.CopyFrom(
                execution_pb2.OutputEvent(
                    node_id=value.node_id, artifacts=[_artifact(a) for a in value.artifacts]
                )
            )
        case ev.Succeeded():
            message.succeeded.CopyFrom(
                execution_pb2.SucceededEvent(
                    artifacts=[_artifact(a) for a in value.artifacts], timing=_timing(value.timing)
                )
            )
        case ev.Failed():
            message.failed.CopyFrom(
                execution_pb2.FailedEvent(
                    reason=execution_pb2.FailureReason.Value(f"FAILURE_REASON_{value.reason.value}"),
                    message=value.message, node_id=value.node_id, node_type=value.node_type,
                    exception_type=value.exception_type, traceback=value.traceback,
                    retryable=value.retryable, timing=_timing(value.timing),
                )
            )  # fmt: skip
        case ev.Cancelled():
            message.cancelled.CopyFrom(
                execution_pb2.CancelledEvent(
                    reason=execution_pb2.CancelReason.Value(f"CANCEL_REASON_{value.reason.value}"),
                    node_id=value.node_id, node_type=value.node_type, timing=_timing(value.timing),
                )
            )  # fmt: skip
    return pb.ExecuteResponse(event=message)


def violation(value: Violation) -> validation_pb2.WorkflowViolation:
    """One violation."""
    severity = "ERROR" if value.severity is Severity.ERROR else "WARNING"
    return validation_pb2.WorkflowViolation(
        reason=validation_pb2.WorkflowViolationReason.Value(
            f"WORKFLOW_VIOLATION_REASON_{value.reason.value}"
        ),
        severity=validation_pb2.ViolationSeverity.Value(f"VIOLATION_SEVERITY_{severity}"),
        node_id=value.node_id,
        node_type=value.node_type,
        input_name=value.input_name,
        message=value.message,
        field=value.field,
    )


def validation(result: ValidationResult) -> pb.ValidateWorkflowResponse:
    """The ValidateWorkflow answer."""
    return pb.ValidateWorkflowResponse(
        valid=result.valid,
        violations=[violation(v) for v in result.violations],
        backends=result.backends,
        output_node_ids=result.output_node_ids,
        checkpoints=result.checkpoints,
    )


_HEALTH = {h: backend_pb2.BackendHealth.Value(f"BACKEND_HEALTH_{h.value}") for h in Health}
_KIND = {k: backend_pb2.BackendKind.Value(f"BACKEND_KIND_{k.value}") for k in Kind}


def backend(state: BackendState) -> backend_pb2.Backend:
    """One backend."""
    return backend_pb2.Backend(
        name=state.name,
        url=state.url,
        kind=_KIND[state.kind],
        health=_HEALTH[state.health],
        health_message=state.health_message,
        draining=state.draining,
        drain_reason=state.drain_reason,
        queue_depth=state.queue_depth,
        running_prompt_id=state.running_prompt_id,
        running_execution_id=state.running_execution_id,
        last_checkpoint=state.last_checkpoint,
        checkpoints=list(state.checkpoints),
        comfyui_version=state.comfyui_version,
        pytorch_version=state.pytorch_version,
        devices=[
            backend_pb2.Device(
                name=d.name,
                type=d.type,
                index=d.index,
                vram_total_bytes=d.vram_total,
                vram_free_bytes=d.vram_free,
            )
            for d in state.devices
        ],
        ram_total_bytes=state.ram_total,
        ram_free_bytes=state.ram_free,
        node_type_count=state.node_type_count,
        last_seen_time=_ts(state.last_seen_time),
        create_time=_ts(state.create_time),
        update_time=_ts(state.update_time),
    )


def node_type(backend_id: str, spec: NodeSpec) -> node_type_pb2.NodeType:
    """One node class."""
    return node_type_pb2.NodeType(
        name=f"backends/{backend_id}/nodeTypes/{spec.class_type}",
        class_type=spec.class_type,
        display_name=spec.display_name,
        category=spec.category,
        description=spec.description,
        output_node=spec.output_node,
        deprecated=spec.deprecated,
        experimental=spec.experimental,
        inputs=[
            node_type_pb2.NodeInputSpec(
                name=i.name,
                type=i.type,
                required=i.required,
                choices=list(i.choices or ()),
                tooltip=i.tooltip,
                options_json=json.dumps({k: v for k, v in i.options.items() if k != "options"}, default=str),
            )
            for i in spec.inputs
        ],
        outputs=[
            node_type_pb2.NodeOutputSpec(type=o.type, name=o.name, is_list=o.is_list) for o in spec.outputs
        ],
    )
