"""Live updates on real Redis: a replica's own snapshots reach its watchers directly and exactly once, other
replicas' through pub/sub; queued signals wake the local dispatcher and every other replica's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from jobs.adapters.live_redis import RedisLive
from jobs.domain.jobs import JobState
from jobs.service.ports import Update
from tests.support.job_values import make_job


@pytest.fixture
async def replicas(clean_redis: str) -> AsyncIterator[tuple[RedisLive, RedisLive]]:
    clients = [Redis.from_url(clean_redis), Redis.from_url(clean_redis)]
    lives = (RedisLive(clients[0]), RedisLive(clients[1]))
    yield lives
    for live, client in zip(lives, clients, strict=True):
        await live.aclose()
        await client.aclose()


async def next_update(updates: AsyncIterator[Update | None]) -> Update | None:
    async with asyncio.timeout(5):
        return await anext(updates)


async def test_a_replica_delivers_its_own_snapshot_once_and_another_replicas_through_redis(
    replicas: tuple[RedisLive, RedisLive],
) -> None:
    here, there = replicas
    first = make_job(state=JobState.RUNNING, sequence=5)
    async with here.subscribe(first.id) as updates:
        await here.publish(first)
        assert await next_update(updates) == Update(5, job=first)
        await there.publish(later := replace(first, sequence=6))
        assert await next_update(updates) == Update(6, job=later)
        # The echo of the first snapshot came back through Redis too, and was dropped: the channel is quiet.
        assert await next_update(updates) is None


async def test_queued_signals_wake_this_replica_at_once_and_the_others_through_redis(
    replicas: tuple[RedisLive, RedisLive],
) -> None:
    here, there = replicas
    signals = here.queued_signals()
    waiting = asyncio.create_task(anext(signals))
    await here.announce_queued()
    async with asyncio.timeout(5):
        await waiting
    waiting = asyncio.create_task(anext(signals))
    await asyncio.sleep(0.3)  # the listener's subscription is in place
    assert not waiting.done()
    await there.announce_queued()
    async with asyncio.timeout(5):
        await waiting
    await signals.aclose()


async def test_a_burst_of_snapshots_reaches_another_replica_complete_and_in_order(
    replicas: tuple[RedisLive, RedisLive],
) -> None:
    here, there = replicas
    job = make_job(state=JobState.RUNNING, sequence=1)
    async with there.subscribe(job.id) as updates:
        await asyncio.sleep(0.1)  # the subscription is in place
        for sequence in range(1, 61):  # within one watcher's inbox
            await here.publish(replace(job, sequence=sequence))
        received = [await next_update(updates) for _ in range(60)]

    assert [u.sequence for u in received if u is not None] == list(range(1, 61))


async def test_closing_a_replica_sends_what_it_had_not_sent_yet(
    replicas: tuple[RedisLive, RedisLive],
) -> None:
    here, there = replicas
    job = make_job(state=JobState.RUNNING, sequence=7)
    async with there.subscribe(job.id) as updates:
        await asyncio.sleep(0.1)  # the subscription is in place
        await here.publish(job)
        await here.aclose()
        assert await next_update(updates) == Update(7, job=job)
