"""InferenceService end to end over a real gRPC port, with the local CPU runtime as its backend."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from comfyapi.inference.v1 import backend_pb2, execution_pb2, validation_pb2
from comfyapi.inference.v1 import inference_service_pb2 as pb
from servicekit import status
from tests.e2e.inference.conftest import WORKFLOWS, Service, kinds, png, slow_workflow

INVERT = json.dumps(
    {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}, "_meta": {"title": "The photo"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inverted"}},
    }
)


def request(execution_id: str, workflow: str, prefix: str = "", **inputs: str) -> pb.ExecuteRequest:
    return pb.ExecuteRequest(
        execution_id=execution_id,
        workflow_json=workflow,
        output_prefix=prefix or f"outputs/{execution_id.replace('/', '_')}",
        inputs=[execution_pb2.InputFile(filename=name, storage_key=key) for name, key in inputs.items()],
    )


async def test_execute_streams_every_event_in_order_and_stores_correct_pixels(service: Service) -> None:
    source = png(64, 48)
    key = service.put_input("uploads/u1/photo.png", source)
    events = await service.run(request("jobs/e2e-1/attempts/1", INVERT, **{"photo.png": key}))

    assert kinds(events) == [
        "accepted",
        "started",
        "node_started",
        "node_started",
        "node_started",
        "output",
        "succeeded",
    ]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].accepted.backend == "backends/local"
    assert not events[0].accepted.attached
    assert [e.node_started.node_id for e in events[2:5]] == ["1", "2", "3"]
    assert events[2].node_started.node_title == "The photo"
    assert events[3].node_started.node_type == "ImageInvert"
    fractions = [e.node_started.fraction for e in events[2:5]]
    assert fractions == sorted(fractions)
    [artifact] = events[-1].succeeded.artifacts
    assert list(events[5].output.artifacts) == [artifact]
    assert artifact.storage_key.startswith("outputs/jobs_e2e-1_attempts_1/3/")
    assert (artifact.content_type, artifact.width, artifact.height) == ("image/png", 64, 48)
    stored = (service.storage / artifact.storage_key).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == artifact.sha256
    assert artifact.size_bytes == len(stored)
    expected = 255 - np.asarray(Image.open(io.BytesIO(source)).convert("RGB"), dtype=np.int16)
    actual = np.asarray(Image.open(io.BytesIO(stored)).convert("RGB"), dtype=np.int16)
    assert np.abs(actual - expected).max() <= 1
    timing = events[-1].succeeded.timing
    assert timing.HasField("start_time")
    assert timing.end_time.ToDatetime() >= timing.start_time.ToDatetime()


async def test_a_dropped_stream_keeps_the_result_and_a_second_call_attaches(service: Service) -> None:
    execution = request("jobs/e2e-attach/attempts/1", slow_workflow(blurs=2, size=1024))
    call = service.stub.Execute(execution)
    async for reply in call:
        if reply.event.WhichOneof("event") == "node_started":
            break
    call.cancel()

    events = await service.run(execution)

    assert events[0].accepted.attached
    assert kinds(events)[-1] == "succeeded"
    assert kinds(events).count("succeeded") == 1
    [artifact] = events[-1].succeeded.artifacts
    assert (service.storage / artifact.storage_key).exists()


async def test_the_same_execution_id_with_another_workflow_is_a_conflict(service: Service) -> None:
    key = service.put_input("uploads/u1/conflict.png", png(8, 8))
    await service.run(request("jobs/e2e-conflict/attempts/1", INVERT, **{"photo.png": key}))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.run(request("jobs/e2e-conflict/attempts/1", slow_workflow(1, 64)))

    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert status.from_rpc_error(raised.value).reason == "EXECUTION_ID_CONFLICT"


async def test_cancel_removes_a_queued_execution_and_interrupts_a_running_one(service: Service) -> None:
    running_req = request("jobs/e2e-cancel-running/attempts/1", slow_workflow())
    queued_req = request("jobs/e2e-cancel-queued/attempts/1", slow_workflow(blurs=1, size=256))
    running_events: list[execution_pb2.ExecuteEvent] = []
    started = asyncio.Event()

    async def follow_running() -> None:
        async for reply in service.stub.Execute(running_req):
            running_events.append(reply.event)
            if reply.event.node_started.node_type == "ImageBlur":
                started.set()

    running_task = asyncio.create_task(follow_running())
    await asyncio.wait_for(started.wait(), 30)
    queued_events: list[execution_pb2.ExecuteEvent] = []
    queued_call = service.stub.Execute(queued_req)
    async for reply in queued_call:
        queued_events.append(reply.event)
        if reply.event.WhichOneof("event") == "queued":
            break

    removed = await service.stub.Cancel(pb.CancelRequest(execution_id=queued_req.execution_id))
    queued_events.extend([reply.event async for reply in queued_call])
    interrupted = await service.stub.Cancel(pb.CancelRequest(execution_id=running_req.execution_id))
    await asyncio.wait_for(running_task, 30)
    again = await service.stub.Cancel(pb.CancelRequest(execution_id=running_req.execution_id))

    assert removed.outcome == pb.CANCEL_OUTCOME_REMOVED_FROM_QUEUE
    assert kinds(queued_events) == ["accepted", "queued", "cancelled"]
    assert queued_events[1].queued.position == 1
    assert queued_events[-1].cancelled.reason == execution_pb2.CANCEL_REASON_REQUESTED
    assert not queued_events[-1].cancelled.node_id
    assert interrupted.outcome == pb.CANCEL_OUTCOME_INTERRUPT_REQUESTED
    assert kinds(running_events)[-1] == "cancelled"
    assert running_events[-1].cancelled.reason == execution_pb2.CANCEL_REASON_REQUESTED
    assert running_events[-1].cancelled.node_id
    assert "succeeded" not in kinds(running_events)
    assert again.outcome == pb.CANCEL_OUTCOME_ALREADY_FINISHED


async def test_cancel_of_an_unknown_execution_is_not_found(service: Service) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.stub.Cancel(pb.CancelRequest(execution_id="jobs/never/attempts/1"))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert status.from_rpc_error(raised.value).reason == "EXECUTION_NOT_FOUND"


async def test_a_node_exception_fails_with_node_type_and_is_not_retryable(service: Service) -> None:
    workflow = (WORKFLOWS / "runtime_error_mask_batch.json").read_text()
    events = await service.run(request("jobs/e2e-error/attempts/1", workflow))

    failed = events[-1].failed
    assert kinds(events)[-1] == "failed"
    assert (failed.node_id, failed.node_type) == ("4", "ImageCropToMask")
    assert failed.reason == execution_pb2.FAILURE_REASON_NODE_EXCEPTION
    assert "does not match" in failed.message
    assert not failed.retryable


BAD_INPUTS = {
    "malformed JSON": ('{"1": {"class_type": ', "INVALID_JSON", "workflow_json"),
    "cycle": ((WORKFLOWS / "invalid" / "cycle_self_link.json").read_text(), "CYCLE", 'workflow_json["2"]'),
    "UI format": (
        json.dumps({"nodes": [{"id": 1, "type": "LoadImage"}], "links": []}),
        "UI_FORMAT_WORKFLOW",
        "workflow_json",
    ),
    "10 MB workflow": (
        json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"pad": "x" * 10_000_000}}}),
        "TOO_LARGE",
        "workflow_json",
    ),
    "link to a missing node": (
        (WORKFLOWS / "invalid" / "link_to_missing_node.json").read_text(),
        "LINK_TO_MISSING_NODE",
        'workflow_json["3"].inputs.image',
    ),
    "unknown node type": (
        (WORKFLOWS / "invalid" / "unknown_class_type.json").read_text(),
        "UNKNOWN_NODE_TYPE",
        'workflow_json["9"]',
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_workflows_are_invalid_argument_naming_the_node_and_the_service_stays_serving(
    service: Service, case: str
) -> None:
    workflow, reason, field = BAD_INPUTS[case]
    key = service.put_input("uploads/u1/capture_input.png", png(16, 16))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.run(
            request(f"jobs/bad-{abs(hash(case))}/attempts/1", workflow, **{"capture_input.png": key})
        )

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = status.from_rpc_error(raised.value)
    assert error.reason == "WORKFLOW_INVALID"
    assert error.violations[0].field == field
    assert error.violations[0].description.startswith(reason)
    await assert_serving(service)


async def test_an_input_that_is_not_an_image_is_invalid_argument(service: Service) -> None:
    key = service.put_input("uploads/u1/notes.png", b"%PDF-1.7 definitely not an image")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.run(request("jobs/e2e-not-image/attempts/1", INVERT, **{"photo.png": key}))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = status.from_rpc_error(raised.value)
    assert error.reason == "INPUT_NOT_IMAGE"
    assert error.violations[0].field == "inputs[0].storage_key"
    await assert_serving(service)


async def test_a_missing_input_object_is_not_found(service: Service) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.run(request("jobs/e2e-missing/attempts/1", INVERT, **{"photo.png": "uploads/none.png"}))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert status.from_rpc_error(raised.value).reason == "INPUT_NOT_FOUND"


@pytest.mark.parametrize(
    ("field", "execution"),
    [
        (
            "execution_id",
            pb.ExecuteRequest(execution_id="bad id!", workflow_json=INVERT, output_prefix="o/1"),
        ),
        (
            "output_prefix",
            pb.ExecuteRequest(execution_id="jobs/x/attempts/1", workflow_json=INVERT, output_prefix="../o"),
        ),
        (
            "inputs[0].filename",
            pb.ExecuteRequest(
                execution_id="jobs/x/attempts/1",
                workflow_json=INVERT,
                output_prefix="o/1",
                inputs=[execution_pb2.InputFile(filename="../etc/passwd", storage_key="k.png")],
            ),
        ),
    ],
)
async def test_malformed_requests_name_the_field(
    service: Service, field: str, execution: pb.ExecuteRequest
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.run(execution)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert status.from_rpc_error(raised.value).violations[0].field == field


@pytest.mark.parametrize(
    ("name", "reason", "node_id", "input_name"),
    [
        ("bad_combo_value", "VALUE_NOT_IN_CHOICES", "2", "upscale_method"),
        ("value_above_max", "VALUE_OUT_OF_RANGE", "2", "scale_by"),
        ("wrong_type_value", "WRONG_TYPE", "2", "scale_by"),
        ("missing_required_widget", "MISSING_REQUIRED_INPUT", "3", "sigma"),
        ("missing_required_link", "MISSING_REQUIRED_INPUT", "3", "image"),
        ("link_bad_output_index", "BAD_OUTPUT_INDEX", "3", "image"),
        ("link_type_mismatch_mask_to_image", "TYPE_MISMATCH", "3", "image"),
        ("missing_class_type", "MISSING_CLASS_TYPE", "1", ""),
        ("missing_input_file", "INPUT_FILE_MISSING", "1", "image"),
        ("no_output_node", "NO_OUTPUT_NODE", "", ""),
        ("cycle_self_link", "CYCLE", "2", ""),
        ("ckpt_not_in_list", "UNKNOWN_NODE_TYPE", "3", ""),  # the local runtime offers no model nodes
    ],
)
async def test_validate_workflow_reports_each_violation_with_node_and_input(
    service: Service, name: str, reason: str, node_id: str, input_name: str
) -> None:
    answer = await service.stub.ValidateWorkflow(
        pb.ValidateWorkflowRequest(
            workflow_json=(WORKFLOWS / "invalid" / f"{name}.json").read_text(),
            input_filenames=["capture_input.png"],
        )
    )

    assert not answer.valid
    first = answer.violations[0]
    assert validation_pb2.WorkflowViolationReason.Name(first.reason) == f"WORKFLOW_VIOLATION_REASON_{reason}"
    assert (first.node_id, first.input_name) == (node_id, input_name)
    assert list(answer.backends) == ["backends/local"]


async def test_validate_workflow_accepts_a_good_workflow(service: Service) -> None:
    answer = await service.stub.ValidateWorkflow(
        pb.ValidateWorkflowRequest(workflow_json=INVERT, input_filenames=["photo.png"])
    )

    assert answer.valid
    assert list(answer.output_node_ids) == ["3"]


async def test_list_backends_reports_health_version_and_catalog(service: Service) -> None:
    answer = await service.stub.ListBackends(pb.ListBackendsRequest())
    [backend] = answer.backends

    assert backend.name == "backends/local"
    assert backend.health == backend_pb2.BACKEND_HEALTH_HEALTHY
    assert backend.kind == backend_pb2.BACKEND_KIND_LOCAL_RUNTIME
    assert backend.url.startswith("http://127.0.0.1:")
    assert backend.comfyui_version
    assert backend.node_type_count >= 13
    got = await service.stub.GetBackend(pb.GetBackendRequest(name="backends/local"))
    assert got.backend.name == "backends/local"


async def test_list_node_types_pages_the_catalog(service: Service) -> None:
    first = await service.stub.ListNodeTypes(pb.ListNodeTypesRequest(parent="backends/local", page_size=5))
    second = await service.stub.ListNodeTypes(
        pb.ListNodeTypesRequest(parent="backends/local", page_size=5, page_token=first.next_page_token)
    )
    only = await service.stub.ListNodeTypes(
        pb.ListNodeTypesRequest(parent="backends/-", class_types=["ImageScale"])
    )

    names = [n.class_type for n in [*first.node_types, *second.node_types]]
    assert names == sorted(names)
    assert len(set(names)) == 10
    [scale] = only.node_types
    assert scale.name == "backends/local/nodeTypes/ImageScale"
    assert [i.name for i in scale.inputs] == ["image", "upscale_method", "width", "height", "crop"]
    assert "bilinear" in scale.inputs[1].choices


async def test_drain_needs_an_operator_and_stops_new_work(service: Service) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await service.stub.DrainBackend(pb.DrainBackendRequest(name="backends/local", reason="maintenance"))
    operator = (("x-comfyapi-principal", '{"sub":"services/ops","kind":"service","scopes":[]}'),)
    drained = await service.stub.DrainBackend(
        pb.DrainBackendRequest(name="backends/local", reason="driver upgrade"), metadata=operator
    )
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await service.run(request("jobs/e2e-drained/attempts/1", slow_workflow(1, 64)))
    finally:
        undrained = await service.stub.UndrainBackend(
            pb.UndrainBackendRequest(name="backends/local"), metadata=operator
        )
    events = await service.run(request("jobs/e2e-undrained/attempts/1", slow_workflow(1, 64)))

    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert status.from_rpc_error(denied.value).reason == "OPERATOR_REQUIRED"
    assert drained.backend.draining
    assert drained.backend.drain_reason == "driver upgrade"
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not undrained.backend.draining
    assert kinds(events)[-1] == "succeeded"


async def assert_serving(service: Service) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_concurrent_executions_with_identical_input_bytes_all_succeed(service: Service) -> None:
    # Large enough that rewriting the backend's copy while a LoadImage decodes it would be seen.
    noise = np.random.default_rng(7).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    key = service.put_input("uploads/u1/noise.png", buffer.getvalue())
    requests = [request(f"jobs/e2e-shared-{i}/attempts/1", INVERT, **{"photo.png": key}) for i in range(9)]
    first = await service.run(requests[0])
    copies = {p.name: p.stat().st_mtime_ns for p in service.runtime_inputs.iterdir()}

    results = await asyncio.gather(*(service.run(r) for r in requests[1:]))

    assert kinds(first)[-1] == "succeeded"
    assert [events[-1].failed.message for events in results if events[-1].HasField("failed")] == []
    assert [kinds(events)[-1] for events in results] == ["succeeded"] * len(results)
    assert {p.name: p.stat().st_mtime_ns for p in service.runtime_inputs.iterdir()} == copies


async def test_an_input_whose_name_holds_other_bytes_on_the_backend_is_run_from_its_renamed_copy(
    service: Service,
) -> None:
    source = png(24, 16)
    key = service.put_input("uploads/u1/renamed.png", source)
    # The content-addressed name the service uploads under, already taken on the backend by other bytes.
    taken = service.runtime_inputs / (hashlib.sha256(source).hexdigest()[:32] + ".png")
    taken.write_bytes(png(24, 16, lambda x, y: (0, 0, 0)))

    events = await service.run(request("jobs/e2e-renamed/attempts/1", INVERT, **{"photo.png": key}))

    assert kinds(events)[-1] == "succeeded"
    [artifact] = events[-1].succeeded.artifacts
    stored = Image.open(io.BytesIO((service.storage / artifact.storage_key).read_bytes())).convert("RGB")
    expected = 255 - np.asarray(Image.open(io.BytesIO(source)).convert("RGB"), dtype=np.int16)
    assert np.abs(np.asarray(stored, dtype=np.int16) - expected).max() <= 1
    assert (service.runtime_inputs / f"{taken.stem} (1).png").read_bytes() == source
