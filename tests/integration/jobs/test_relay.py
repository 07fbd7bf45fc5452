"""The outbox relay on PostgreSQL: what this replica commits goes out at once, not at the next poll."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.adapters import codec
from jobs.adapters.job_store import SqlJobStore
from jobs.adapters.queue_sql import SqlOutbox
from jobs.adapters.tables import jobs
from jobs.domain import effects
from jobs.domain.jobs import JobState, finish
from jobs.service.maintenance import Relay
from jobs.service.ports import OutboxItem
from tests.support.job_values import make_job


async def test_a_finished_job_is_settled_at_once_though_the_relay_polls_only_hourly(
    engine: AsyncEngine,
) -> None:
    written = asyncio.Event()
    store = SqlJobStore(engine, written.set)
    settled: asyncio.Queue[str] = asyncio.Queue()

    async def commit(item: OutboxItem) -> None:
        await settled.put(item.key)

    job = make_job(state=JobState.RUNNING)
    async with engine.begin() as connection:
        row = codec.to_row(job) | {"request_hash": "", "workflow_json": "{}", "files": []}
        row["next_attempt_time"] = job.create_time
        await connection.execute(insert(jobs).values(**row))
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
