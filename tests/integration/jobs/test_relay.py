"""The outbox relay on PostgreSQL: what this replica commits goes out at once, not at the next poll, and
what was performed long ago is pruned."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.adapters import codec
from jobs.adapters.job_store import SqlJobStore
from jobs.adapters.queue_sql import SqlOutbox
from jobs.adapters.tables import jobs, outbox
from jobs.domain import effects
from jobs.domain.jobs import Job, JobState, finish
from jobs.service.maintenance import Relay
from jobs.service.ports import OutboxItem
from tests.support.job_values import make_job


async def add_running(engine: AsyncEngine) -> Job:
    job = make_job(state=JobState.RUNNING)
    async with engine.begin() as connection:
        row = codec.to_row(job) | {"request_hash": "", "workflow_json": "{}", "files": []}
        row["next_attempt_time"] = job.create_time
        await connection.execute(insert(jobs).values(**row))
    return job


async def outbox_keys(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(outbox.c.key).order_by(outbox.c.key))).scalars())


async def test_an_outcome_writes_its_messages_once_and_a_fenced_out_change_writes_none(
    engine: AsyncEngine,
) -> None:
    store = SqlJobStore(engine)
    job = await add_running(engine)
    done = finish(job, JobState.SUCCEEDED, datetime.now(UTC))

    assert not await store.save(done, JobState.QUEUED, effects.on_finish(done))  # not in that state
    assert await outbox_keys(engine) == []
    assert await store.save(done, JobState.RUNNING, effects.on_finish(done))
    assert not await store.save(done, JobState.RUNNING, effects.on_finish(done))  # it ended already
    assert await outbox_keys(engine) == [job.id]


async def test_a_finished_job_is_settled_at_once_though_the_relay_polls_only_hourly(
    engine: AsyncEngine,
) -> None:
    written = asyncio.Event()
    store = SqlJobStore(engine, written.set)
    settled: asyncio.Queue[str] = asyncio.Queue()

    async def commit(item: OutboxItem) -> None:
        await settled.put(item.key)

    job = await add_running(engine)
    relay = Relay(SqlOutbox(engine), {effects.USAGE_COMMIT: commit}, written)
    running = asyncio.create_task(relay.run(interval=3600))
    try:
        await asyncio.sleep(0.3)  # its first pass found nothing: it waits
        done = finish(job, JobState.SUCCEEDED, datetime.now(UTC))
        assert await store.save(done, JobState.RUNNING, effects.on_finish(done))
        async with asyncio.timeout(10):
            assert await settled.get() == job.id
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_messages_performed_over_a_week_ago_are_pruned_and_nothing_else(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    ages = {"old-done": (now - timedelta(days=8), now - timedelta(days=8))}
    ages["recent-done"] = (now - timedelta(days=8), now - timedelta(hours=1))
    ages["old-pending"] = (now - timedelta(days=30), None)
    async with engine.begin() as connection:
        for key, (created, done) in ages.items():
            await connection.execute(
                insert(outbox).values(
                    topic=effects.USAGE_COMMIT,
                    key=key,
                    payload={},
                    create_time=created,
                    available_time=created,
                    attempts=1,
                    done_time=done,
                )
            )
    relay = Relay(SqlOutbox(engine), {})

    assert await relay.prune() == 1
    assert await outbox_keys(engine) == ["old-pending", "recent-done"]
