"""The inference service killed outright (SIGKILL) mid-job and started again on the same address.

The backend (the local runtime, a separate process like a ComfyUI sidecar) keeps running the prompt. The jobs
service sees its execution stream break and executes the same id again; the restarted inference service
finds the prompt on the backend and re-attaches to it, so the job completes without running twice.
"""

from __future__ import annotations

import pytest

from comfyapi.jobs.v1 import job_pb2
from inference.domain.prompts import prompt_id_for
from tests.e2e.crash.conftest import Stack, eventually, slow_workflow
from tests.e2e.crash.test_jobs_killed import assert_finished_once

pytestmark = pytest.mark.timeout(400)


async def test_inference_killed_mid_job_is_reattached_after_restart_and_job_ends_once(stack: Stack) -> None:
    created = await stack.create(slow_workflow(), request_id="inference-1")
    await eventually(
        lambda: stack.get(created.name),
        lambda j: j.state == job_pb2.JOB_STATE_RUNNING and j.progress.node_type == "ImageBlur",
        "the job to reach its first blur",
    )
    prompt = prompt_id_for(f"{created.name}/attempts/1")
    assert await stack.runtime_running() == [prompt]

    await stack.inference.kill()
    assert await stack.runtime_running() == [prompt]
    await stack.inference.start()

    done = await stack.finished(created.name)
    await assert_finished_once(stack, done)
    # Re-attached: the first attempt, and the backend ran exactly that prompt once.
    assert done.attempt_count == 1
    assert list(await stack.runtime_history()) == [prompt]
    assert await stack.usage() == (1, 0)
    broken = [line for line in stack.jobs.log_lines() if line.get("event") == "execution.stream_broken"]
    assert broken, "the jobs service never saw the stream break"
