"""Redis emptied mid-job, as after a Redis restart: the job still finishes and its watchers still see the end.

Other work shares this Redis server, so the test empties only the database its services use (FLUSHDB on the
test's own index, not FLUSHALL) and drops only the connections on that index (CLIENT KILL ID for each),
which is what a restart looks like to these services: every key gone and every subscription cut. Redis
holds nothing but live fan-out, so watchers fall back to reading PostgreSQL and the dispatcher to polling.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from comfyapi.jobs.v1 import job_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as pb
from tests.e2e.crash.conftest import TERMINAL, Stack, as_user, eventually, slow_workflow, tiny_workflow
from tests.e2e.crash.test_jobs_killed import assert_finished_once

pytestmark = pytest.mark.timeout(400)


async def lose_redis(url: str) -> int:
    """Empties this test's Redis database and cuts every other connection to it; returns how many were cut."""
    client = Redis.from_url(url)
    try:
        await client.flushdb()
        me = await client.client_id()
        db = client.connection_pool.connection_kwargs.get("db", 0)
        cut = 0
        for entry in await client.client_list():
            if int(entry["db"]) == int(db) and int(entry["id"]) != me:
                await client.execute_command("CLIENT", "KILL", "ID", entry["id"])
                cut += 1
        return cut
    finally:
        await client.aclose()


async def watch_to_end(stack: Stack, name: str) -> list[job_pb2.Job]:
    """Every snapshot a WatchJob stream delivers until it ends."""
    seen = []
    async for reply in stack.stub.WatchJob(pb.WatchJobRequest(name=name), metadata=as_user()):
        seen.append(reply.job)
    return seen


async def test_redis_lost_mid_job_loses_no_job_and_watchers_still_see_the_end(stack: Stack) -> None:
    created = await stack.create(slow_workflow(), request_id="flush-1")
    watchers = [asyncio.create_task(watch_to_end(stack, created.name)) for _ in range(2)]
    await eventually(
        lambda: stack.get(created.name),
        lambda j: j.state == job_pb2.JOB_STATE_RUNNING and j.progress.node_type == "ImageBlur",
        "the job to reach its first blur",
    )
    # Both watch streams and the dispatcher's wake-up channel are subscribed by now.
    assert await lose_redis(stack.redis_url) >= 1

    done = await stack.finished(created.name)
    await assert_finished_once(stack, done)
    for watcher in watchers:
        seen = await asyncio.wait_for(watcher, 60)
        assert seen[-1].state == job_pb2.JOB_STATE_SUCCEEDED
        assert seen[-1].outputs == done.outputs
        assert [s.state for s in seen if s.state in TERMINAL] == [job_pb2.JOB_STATE_SUCCEEDED]

    # A job queued after the loss is still picked up and watched to its end.
    after = await stack.create(tiny_workflow(), request_id="flush-2")
    seen = await asyncio.wait_for(watch_to_end(stack, after.name), 60)
    assert seen[-1].state == job_pb2.JOB_STATE_SUCCEEDED
    await assert_finished_once(stack, await stack.get(after.name))
    assert await stack.usage() == (2, 0)
