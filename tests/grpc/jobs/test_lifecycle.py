"""Jobs from admission to their end through JobService, with real PostgreSQL, Redis and billing."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from comfyapi.jobs.v1 import job_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as pb
from servicekit import status
from tests.grpc.jobs.conftest import QUOTA, JobsHarness, as_user

WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "out"}},
}
TERMINAL = {
    job_pb2.JOB_STATE_SUCCEEDED,
    job_pb2.JOB_STATE_FAILED,
    job_pb2.JOB_STATE_CANCELLED,
    job_pb2.JOB_STATE_EXPIRED,
}


def create_request(
    user: str = "alice", request_id: str = "", workflow: dict | None = None, **extra: object
) -> pb.CreateJobRequest:
    return pb.CreateJobRequest(
        request_id=request_id,
        workflow_json=json.dumps(workflow or WORKFLOW),
        inputs=[job_pb2.JobInput(name="photo.png", upload_key=f"uploads/{user}/u1/photo.png")],
        **extra,
    )


async def wait_for_state(h: JobsHarness, name: str, states: set[int], user: str = "alice") -> job_pb2.Job:
    for _ in range(400):
        job = (await h.jobs.GetJob(pb.GetJobRequest(name=name), metadata=as_user(user))).job
        if job.state in states:
            return job
        await asyncio.sleep(0.025)
    raise AssertionError(f"{name} never reached {states}; last {job_pb2.JobState.Name(job.state)}")


async def test_a_workflow_job_runs_to_success_and_its_usage_is_committed_once(harness: JobsHarness) -> None:
    created = (await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))).job
    assert created.state in (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING)
    assert created.source.workflow.node_types == ["ImageInvert", "LoadImage", "SaveImage"]
    done = await wait_for_state(harness, created.name, TERMINAL)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED
    assert [a.filename for a in done.outputs] == ["out.png"]
    assert done.attempt_count == 1
    request = harness.inference.executions[f"{created.name}/attempts/1"].request
    assert json.loads(request.workflow_json)["1"]["inputs"]["image"] == "photo.png"
    assert [(f.filename, f.storage_key) for f in request.inputs] == [
        ("photo.png", "uploads/alice/u1/photo.png")
    ]
    for _ in range(200):
        if await harness.usage("alice") == (1, 0):
            break
        await asyncio.sleep(0.025)
    assert await harness.usage("alice") == (1, 0)


async def test_the_same_idempotency_key_returns_the_original_job(harness: JobsHarness) -> None:
    first = (await harness.jobs.CreateJob(create_request(request_id="k-1"), metadata=as_user("alice"))).job
    again = (await harness.jobs.CreateJob(create_request(request_id="k-1"), metadata=as_user("alice"))).job
    assert again.name == first.name
    other = dict(
        WORKFLOW, **{"3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await harness.jobs.CreateJob(
            create_request(request_id="k-1", workflow=other), metadata=as_user("alice")
        )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert status.from_rpc_error(raised.value).reason == "IDEMPOTENCY_KEY_REUSED"
    listed = (await harness.jobs.ListJobs(pb.ListJobsRequest(), metadata=as_user("alice"))).jobs
    assert [j.name for j in listed] == [first.name]
    assert await harness.usage("alice") in ((0, 1), (1, 0))


@pytest.mark.parametrize(
    ("request_text", "reason", "field"),
    [
        ("{not json", "WORKFLOW_INVALID", "workflow_json"),
        (json.dumps({"nodes": [], "links": []}), "WORKFLOW_INVALID", "workflow_json"),
        (json.dumps({"1": {"inputs": {}}}), "WORKFLOW_INVALID", 'workflow_json["1"]'),
        (
            json.dumps({**WORKFLOW, "4": {"class_type": "UnknownNode", "inputs": {}}}),
            "WORKFLOW_INVALID",
            'workflow_json["4"]',
        ),
    ],
)
async def test_a_bad_workflow_is_refused_naming_the_node_and_nothing_is_kept(
    harness: JobsHarness, request_text: str, reason: str, field: str
) -> None:
    request = create_request()
    request.workflow_json = request_text
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await harness.jobs.CreateJob(request, metadata=as_user("alice"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = status.from_rpc_error(raised.value)
    assert error.reason == reason
    assert error.violations[0].field == field
    assert not (await harness.jobs.ListJobs(pb.ListJobsRequest(), metadata=as_user("alice"))).jobs
    assert await harness.usage("alice") == (0, 0)


async def test_bad_fields_are_named(harness: JobsHarness) -> None:
    cases = [
        (create_request(labels={"Bad Key": "x"}), "LABELS_INVALID"),
        (
            create_request(webhook=job_pb2.WebhookConfig(url="https://127.0.0.1/hook")),
            "WEBHOOK_URL_FORBIDDEN",
        ),
        (
            create_request(
                webhook=job_pb2.WebhookConfig(url="https://example.com/h", events=["job.exploded"])
            ),
            "WEBHOOK_EVENT_UNKNOWN",
        ),
        (pb.CreateJobRequest(), "SOURCE_MISSING"),
    ]
    for request, reason in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await harness.jobs.CreateJob(request, metadata=as_user("alice"))
        assert status.from_rpc_error(raised.value).reason == reason
    foreign = create_request()
    foreign.inputs[0].upload_key = "uploads/bob/u1/photo.png"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await harness.jobs.CreateJob(foreign, metadata=as_user("alice"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_over_quota_is_refused_and_leaves_no_job(harness: JobsHarness) -> None:
    harness.inference.hold = True
    for _ in range(QUOTA):
        await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.from_rpc_error(raised.value).reason == "QUOTA_EXCEEDED"
    listed = (await harness.jobs.ListJobs(pb.ListJobsRequest(), metadata=as_user("alice"))).jobs
    assert len(listed) == QUOTA


async def test_concurrent_admissions_are_each_judged_and_placed_in_the_queue(harness: JobsHarness) -> None:
    harness.inference.hold = True
    await harness.jobs.CreateJob(create_request("carol"), metadata=as_user("carol"))
    await harness.inference.wait_started(1)
    results = await asyncio.gather(
        *(
            harness.jobs.CreateJob(create_request("alice"), metadata=as_user("alice"))
            for _ in range(QUOTA + 3)
        ),
        *(harness.jobs.CreateJob(create_request("bob"), metadata=as_user("bob")) for _ in range(2)),
        return_exceptions=True,
    )
    created = [r.job for r in results if isinstance(r, pb.CreateJobResponse)]
    refused = [status.from_rpc_error(r).reason for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert refused == ["QUOTA_EXCEEDED"] * 3
    assert len(created) == QUOTA + 2
    assert sorted(j.queue_position for j in created) == list(range(1, QUOTA + 3))
    assert await harness.usage("alice") == (0, QUOTA)

    urgent = (
        await harness.jobs.CreateJob(
            create_request("bob", priority=job_pb2.JOB_PRIORITY_HIGH), metadata=as_user("bob")
        )
    ).job
    assert urgent.queue_position == 1
    read = [
        (
            await harness.jobs.GetJob(pb.GetJobRequest(name=j.name), metadata=as_user(j.owner.split("/")[1]))
        ).job
        for j in created
    ]
    assert sorted(j.queue_position for j in read) == list(range(2, QUOTA + 4))


async def test_another_users_job_is_not_found(harness: JobsHarness) -> None:
    created = (await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))).job
    for call in (
        harness.jobs.GetJob(pb.GetJobRequest(name=created.name), metadata=as_user("bob")),
        harness.jobs.CancelJob(pb.CancelJobRequest(name=created.name), metadata=as_user("bob")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await harness.jobs.GetJob(
            pb.GetJobRequest(name=created.name), metadata=as_user("alice", "presets:read")
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_cancelling_queued_and_running_jobs_releases_their_usage(harness: JobsHarness) -> None:
    harness.inference.hold = True
    running = (await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))).job
    queued = (await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))).job
    await harness.inference.wait_started(1)
    cancelled = (
        await harness.jobs.CancelJob(pb.CancelJobRequest(name=queued.name), metadata=as_user("alice"))
    ).job
    assert cancelled.state == job_pb2.JOB_STATE_CANCELLED
    requested = (
        await harness.jobs.CancelJob(pb.CancelJobRequest(name=running.name), metadata=as_user("alice"))
    ).job
    assert requested.state == job_pb2.JOB_STATE_RUNNING
    assert requested.cancel_requested
    done = await wait_for_state(harness, running.name, TERMINAL)
    assert done.state == job_pb2.JOB_STATE_CANCELLED
    assert f"{queued.name}/attempts/1" not in harness.inference.executions, (
        "a cancelled queued job never runs"
    )
    repeat = pb.CancelJobRequest(name=running.name)
    again = (await harness.jobs.CancelJob(repeat, metadata=as_user("alice"))).job
    assert again.state == job_pb2.JOB_STATE_CANCELLED, "cancelling twice is safe"
    for _ in range(200):
        if await harness.usage("alice") == (0, 0):
            break
        await asyncio.sleep(0.025)
    assert await harness.usage("alice") == (0, 0)


async def test_cancelling_a_finished_job_is_refused(harness: JobsHarness) -> None:
    created = (await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))).job
    await wait_for_state(harness, created.name, TERMINAL)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await harness.jobs.CancelJob(pb.CancelJobRequest(name=created.name), metadata=as_user("alice"))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert status.from_rpc_error(raised.value).reason == "JOB_ALREADY_FINISHED"


async def test_a_node_error_fails_the_job_without_retrying(harness: JobsHarness) -> None:
    harness.inference.outcome = "failed"
    created = (await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))).job
    done = await wait_for_state(harness, created.name, TERMINAL)
    assert done.state == job_pb2.JOB_STATE_FAILED
    assert (done.error.reason, done.error.node_id, done.error.node_type) == (
        job_pb2.JOB_ERROR_REASON_NODE_FAILED,
        "2",
        "ImageInvert",
    )
    assert done.attempt_count == 1


async def test_a_transient_failure_is_retried_and_then_succeeds(harness: JobsHarness) -> None:
    harness.inference.outcome = "retryable"
    created = (await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))).job
    await harness.inference.wait_started(1)
    harness.inference.outcome = "succeeded"
    done = await wait_for_state(harness, created.name, TERMINAL)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED
    assert done.attempt_count == 2


async def test_watch_streams_increasing_snapshots_to_the_end_and_resumes(harness: JobsHarness) -> None:
    harness.inference.hold = True
    created = (await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))).job
    seen: list[tuple[int, int]] = []

    async def watch(after: int) -> None:
        stream = harness.jobs.WatchJob(
            pb.WatchJobRequest(name=created.name, after_sequence=after), metadata=as_user("alice")
        )
        async for reply in stream:
            seen.append((reply.sequence, reply.job.state))

    watcher = asyncio.create_task(watch(0))
    await harness.inference.wait_started(1)
    await asyncio.sleep(0.2)
    harness.inference.execution(f"{created.name}/attempts/1").release.set()
    await asyncio.wait_for(watcher, 20)
    sequences = [s for s, _ in seen]
    assert sequences == sorted(set(sequences)), "sequences strictly increase"
    assert seen[-1][1] == job_pb2.JOB_STATE_SUCCEEDED
    assert job_pb2.JOB_STATE_RUNNING in {state for _, state in seen}
    resumed: list[tuple[int, int]] = []
    async for reply in harness.jobs.WatchJob(
        pb.WatchJobRequest(name=created.name, after_sequence=sequences[-2]), metadata=as_user("alice")
    ):
        resumed.append((reply.sequence, reply.job.state))
    assert resumed == [seen[-1]]


async def test_a_terminal_only_watch_sends_just_the_outcome(harness: JobsHarness) -> None:
    harness.inference.hold = True
    created = (await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))).job

    async def outcome() -> list[int]:
        request = pb.WatchJobRequest(name=created.name, terminal_only=True)
        return [r.job.state async for r in harness.jobs.WatchJob(request, metadata=as_user("alice"))]

    waiting = asyncio.create_task(outcome())
    await harness.inference.wait_started(1)
    await asyncio.sleep(0.2)
    harness.inference.execution(f"{created.name}/attempts/1").release.set()
    assert await asyncio.wait_for(waiting, 20) == [job_pb2.JOB_STATE_SUCCEEDED]
    assert await outcome() == [job_pb2.JOB_STATE_SUCCEEDED], "an ended job answers at once"


async def test_create_job_with_a_wait_answers_with_the_outcome_or_the_job_as_it_is_when_the_wait_ends(
    harness: JobsHarness,
) -> None:
    harness.inference.hold = True
    request = create_request()
    request.wait.FromSeconds(30)
    waiting = asyncio.ensure_future(harness.jobs.CreateJob(request, metadata=as_user("alice")))
    await harness.inference.wait_started(1)
    [execution] = harness.inference.executions
    harness.inference.execution(execution).release.set()
    finished = (await asyncio.wait_for(waiting, 20)).job
    assert finished.state == job_pb2.JOB_STATE_SUCCEEDED
    assert execution == f"{finished.name}/attempts/1"

    short = create_request()
    short.wait.FromMilliseconds(300)
    running = (await harness.jobs.CreateJob(short, metadata=as_user("alice"))).job
    assert running.state in (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING)  # not an error

    for bad in (-1, 601):
        invalid = create_request()
        invalid.wait.FromSeconds(bad)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await harness.jobs.CreateJob(invalid, metadata=as_user("alice"))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in status.from_rpc_error(raised.value).violations] == ["wait"]
    listed = await harness.jobs.ListJobs(pb.ListJobsRequest(), metadata=as_user("alice"))
    assert len(listed.jobs) == 2, "a refused wait creates no job"


async def test_owners_take_turns_so_one_owners_backlog_does_not_starve_another(harness: JobsHarness) -> None:
    harness.inference.hold = True
    alice = [
        (await harness.jobs.CreateJob(create_request("alice"), metadata=as_user("alice"))).job
        for _ in range(5)
    ]
    bob = (await harness.jobs.CreateJob(create_request("bob"), metadata=as_user("bob"))).job
    await harness.inference.wait_started(1)
    order = []
    for step in range(2):
        await harness.inference.wait_started(step + 1)
        running = list(harness.inference.executions)[-1]
        order.append(running.split("/attempts/")[0])
        harness.inference.executions[running].release.set()
    assert order == [alice[0].name, bob.name]


async def test_a_job_whose_dispatcher_lost_its_stream_attaches_again_and_finishes_once(
    harness: JobsHarness,
) -> None:
    harness.inference.hold = True
    created = (await harness.jobs.CreateJob(create_request(), metadata=as_user("alice"))).job
    await harness.inference.wait_started(1)
    execution = harness.inference.execution(f"{created.name}/attempts/1")
    execution.outcome = "lost"
    execution.release.set()
    await asyncio.sleep(0.1)
    execution.outcome = "succeeded"
    done = await wait_for_state(harness, created.name, TERMINAL)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED
    assert execution.streams >= 2, "the dispatcher re-attached to the same execution"
    assert list(harness.inference.executions) == [f"{created.name}/attempts/1"]
