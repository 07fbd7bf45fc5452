"""The jobs service killed outright (SIGKILL) while a job runs, and started again: the job ends once.

No shutdown hook runs: the dying replica neither releases its lease nor closes its stream to inference. The
restarted replica takes the job over when the lease runs out, with the same attempt, and re-attaches to the
execution the backend is still running instead of starting it a second time.
"""

from __future__ import annotations

import pytest

from comfyapi.jobs.v1 import job_pb2
from inference.domain.prompts import prompt_id_for
from tests.e2e.crash.conftest import Stack, eventually, slow_workflow, tiny_workflow

pytestmark = pytest.mark.timeout(400)


async def assert_finished_once(stack: Stack, job: job_pb2.Job) -> None:
    """What the user must see of a job that succeeded: one run, one charge, one webhook."""
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job
    assert [a.filename for a in job.outputs]
    assert all(a.size_bytes > 0 for a in job.outputs)
    await stack.settled(job)
    job_id = job.name.removeprefix("jobs/")
    history = await stack.runtime_history()
    # The runtime numbers submissions 0, 1, 2, ...; a prompt id submitted twice would leave a gap, since its
    # second run replaces the first in the history.
    numbers = sorted(entry["prompt"][0] for entry in history.values())
    assert numbers == list(range(len(history))), f"a prompt was submitted twice: {numbers}"
    attempts = [prompt_id_for(f"{job.name}/attempts/{n}") for n in range(1, job.attempt_count + 1)]
    assert attempts[-1] in history
    assert history[attempts[-1]]["status"]["status_str"] == "success"
    assert await stack.reservations(job.name) == ["committed"]
    assert [(r["topic"], r["done_time"] is not None) for r in await stack.outbox(job_id)] == [
        ("usage.commit", True),
        ("webhook", True),
    ]
    deliveries = await stack.deliveries(job_id)
    assert [(d["event_type"], d["state"]) for d in deliveries] == [("job.succeeded", "succeeded")]
    received = stack.receiver.of_job(job.name)
    assert [(event_id, kind) for event_id, kind, _ in received] == [
        (deliveries[0]["event_id"], "job.succeeded")
    ]


async def test_jobs_killed_while_a_job_runs_finishes_it_exactly_once_after_restart(stack: Stack) -> None:
    created = await stack.create(slow_workflow(), request_id="slow-1")
    running = await eventually(
        lambda: stack.get(created.name),
        lambda j: j.state == job_pb2.JOB_STATE_RUNNING and j.progress.node_type == "ImageBlur",
        "the job to reach its first blur",
    )
    prompt = prompt_id_for(f"{created.name}/attempts/1")
    assert await stack.runtime_running() == [prompt]

    await stack.jobs.kill()
    # The backend keeps running the prompt nobody is listening to any more.
    assert await stack.runtime_running() == [prompt]
    await stack.jobs.start()

    done = await stack.finished(created.name)
    assert done.attempt_count == running.attempt_count == 1
    await assert_finished_once(stack, done)
    assert list(await stack.runtime_history()) == [prompt]
    assert await stack.usage() == (1, 0)
    # The same request again (a client retrying through the crash) is the same job, not a second one.
    again = await stack.create(slow_workflow(), request_id="slow-1")
    assert again.name == created.name
    assert [j.name for j in await stack.list_jobs()] == [created.name]
    takeovers = [line for line in stack.jobs.log_lines() if line.get("event") == "job.dispatched"]
    assert len(takeovers) == 2, takeovers  # claimed once per life of the service, with the same attempt
    assert {line.get("attempt") for line in takeovers} == {1}


async def test_jobs_killed_right_after_admission_runs_the_queued_job_once(stack: Stack) -> None:
    created = await stack.create(tiny_workflow(), request_id="tiny-1")
    assert created.state in (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING)
    await stack.jobs.kill()
    await stack.jobs.start()

    done = await stack.finished(created.name)
    await assert_finished_once(stack, done)
    assert done.attempt_count == 1
    assert await stack.usage() == (1, 0)
