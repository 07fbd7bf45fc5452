"""Two local runtime processes behind one service; one is killed (SIGKILL) in the middle of a job."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from comfyapi.inference.v1 import backend_pb2, execution_pb2
from comfyapi.inference.v1 import inference_service_pb2 as pb
from comfyapi.inference.v1 import inference_service_pb2_grpc as pb_grpc
from inference.adapters.local_runtime import LocalRuntime
from inference.bootstrap import build
from tests.e2e.inference.conftest import kinds, settings, slow_workflow
from tests.support.servers import serving


@pytest.fixture
async def runtimes(tmp_path: Path) -> AsyncIterator[dict[str, LocalRuntime]]:
    started = {name: LocalRuntime(tmp_path / name) for name in ("a", "b")}
    for runtime in started.values():
        await runtime.start()
    yield started
    for runtime in started.values():
        await runtime.stop()


async def test_a_backend_killed_mid_job_reports_it_retryable_once_and_the_retry_runs_on_the_other(
    tmp_path: Path, runtimes: dict[str, LocalRuntime]
) -> None:
    urls = ",".join(f"{name}={runtime.url}" for name, runtime in runtimes.items())
    app = await build(settings(tmp_path, comfyui_urls=urls, backend_lost_grace_seconds="1"))
    async with serving(app) as server, grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.InferenceServiceStub(channel)
        first = pb.ExecuteRequest(
            execution_id="jobs/loss/attempts/1", workflow_json=slow_workflow(), output_prefix="outputs/loss/1"
        )
        events: list[execution_pb2.ExecuteEvent] = []
        async for reply in stub.Execute(first):
            events.append(reply.event)
            if reply.event.node_started.node_type == "ImageBlur":
                victim = reply_backend = events[0].accepted.backend.removeprefix("backends/")
                process = runtimes[victim].process
                assert process is not None
                os.kill(process.pid, signal.SIGKILL)
        listed = await stub.ListBackends(pb.ListBackendsRequest())
        retry = pb.ExecuteRequest(
            execution_id="jobs/loss/attempts/2",
            workflow_json=slow_workflow(1, 128),
            output_prefix="outputs/loss/2",
        )
        retried = [reply.event async for reply in stub.Execute(retry)]

    assert kinds(events).count("failed") == 1
    assert "succeeded" not in kinds(events)
    failed = events[-1].failed
    assert failed.reason == execution_pb2.FAILURE_REASON_BACKEND_LOST
    assert failed.retryable
    health = {b.name: b.health for b in listed.backends}
    assert health[f"backends/{reply_backend}"] != backend_pb2.BACKEND_HEALTH_HEALTHY
    survivor = next(name for name in runtimes if name != reply_backend)
    assert retried[0].accepted.backend == f"backends/{survivor}"
    assert kinds(retried)[-1] == "succeeded"
    await asyncio.sleep(0)
