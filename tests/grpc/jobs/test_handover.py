"""A jobs replica that stops gracefully hands its running jobs to another replica at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import grpc

from comfyapi.jobs.v1 import job_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as pb
from comfyapi.jobs.v1 import jobs_service_pb2_grpc as pb_grpc
from tests.grpc.jobs.conftest import as_user
from tests.grpc.jobs.test_lifecycle import TERMINAL, create_request
from tests.support.fake_inference import FakeInference, fake_inference_app
from tests.support.servers import running_service, serving


async def test_a_stopped_replica_releases_its_leases_and_the_next_one_reattaches(
    database_url: str, clean_redis: str, tmp_path: Path
) -> None:
    plans = [{"plan_id": "p", "display_name": "P", "description": "P.", "monthly_job_quota": 10}]
    (tmp_path / "plans.json").write_text(json.dumps(plans))
    fake = FakeInference()
    fake.hold = True
    settings = {"lease_seconds": "60", "dispatch_concurrency": "1"}
    async with (
        running_service(
            "billing", database_url, clean_redis, plans_file=str(tmp_path / "plans.json"), default_plan="p"
        ) as billing,
        serving(fake_inference_app(fake)) as inference,
    ):
        peers = {"billing_addr": f"127.0.0.1:{billing.port}", "inference_addr": f"127.0.0.1:{inference.port}"}
        async with (
            running_service("jobs", database_url, clean_redis, **peers, **settings) as first,
            grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel,
        ):
            job = (
                await pb_grpc.JobServiceStub(channel).CreateJob(create_request(), metadata=as_user("alice"))
            ).job
            await fake.wait_started(1)
            await first.stop(5.0)
        connection = await asyncpg.connect(database_url)
        try:
            expires, now = await connection.fetchrow(
                "SELECT lease_expires, now() FROM jobs.jobs WHERE id = $1", job.name.removeprefix("jobs/")
            )
        finally:
            await connection.close()
        assert expires <= now, "the stopped replica gave its lease back instead of holding it for 60 s"

        async with (
            running_service("jobs", database_url, clean_redis, **peers, **settings) as second,
            grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel,
        ):
            stub = pb_grpc.JobServiceStub(channel)
            execution = fake.execution(f"{job.name}/attempts/1")
            for _ in range(400):
                if execution.streams >= 2:
                    break
                await asyncio.sleep(0.025)
            execution.release.set()
            for _ in range(400):
                done = (await stub.GetJob(pb.GetJobRequest(name=job.name), metadata=as_user("alice"))).job
                if done.state in TERMINAL:
                    break
                await asyncio.sleep(0.025)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED
    assert done.attempt_count == 1, "the second replica re-attached to the same attempt"
    assert list(fake.executions) == [f"{job.name}/attempts/1"]
