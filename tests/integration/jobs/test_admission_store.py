"""Admission's writes on PostgreSQL: batches of new jobs, queueing with positions, and abandoning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.adapters.job_store import SqlJobStore
from jobs.adapters.tables import SCHEMA_NAME
from jobs.domain import effects
from jobs.domain.jobs import Job, JobState, Priority
from jobs.service.ports import ExecutionSpec
from servicekit import db
from tests.support.job_values import make_job

NOW = datetime(2026, 3, 1, tzinfo=UTC)
SPEC = ExecutionSpec("{}", ())


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlJobStore]:
    engine = db.create_engine(database_url, SCHEMA_NAME)
    yield SqlJobStore(engine)
    await engine.dispose()


def admitting(owner: str, minute: int, priority: Priority = Priority.NORMAL, request_id: str = "") -> Job:
    created = NOW + timedelta(minutes=minute)
    return make_job(owner, JobState.ADMITTING, created, priority=priority, request_id=request_id)


def queued(job: Job) -> Job:
    return replace(job, state=JobState.QUEUED, sequence=2)


async def outbox_keys(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT topic, key FROM outbox ORDER BY id"))
        return [(r.topic, r.key) for r in rows]


async def test_a_batch_insert_writes_the_new_jobs_and_skips_a_taken_request_id(store: SqlJobStore) -> None:
    first = admitting("a", 0, request_id="k")
    assert await store.insert([(first, "h", SPEC)]) == {first.id}
    twin, other = admitting("a", 1, request_id="k"), admitting("a", 2, request_id="k2")
    assert await store.insert([(twin, "h", SPEC), (other, "h", SPEC)]) == {other.id}


async def test_queueing_places_a_batch_behind_what_was_queued_and_by_priority(store: SqlJobStore) -> None:
    earlier = [admitting("a", i) for i in range(3)]
    await store.insert([(j, "", SPEC) for j in earlier])
    placed = await store.enqueue([queued(j) for j in earlier])
    assert [placed[j.id].queue_position for j in earlier] == [1, 2, 3]

    batch = [admitting("b", 10), admitting("c", 11, Priority.HIGH), admitting("b", 12, Priority.LOW)]
    await store.insert([(j, "", SPEC) for j in batch])
    placed = await store.enqueue([queued(j) for j in batch])
    assert [placed[j.id].queue_position for j in batch] == [5, 1, 6]
    again = await store.enqueue([queued(batch[0])])
    assert again == {}, "a job no longer admitting is not queued twice"
    stored = await store.get(None, batch[2].id)
    assert stored is not None
    assert (stored.state, stored.queue_position) == (JobState.QUEUED, 6)


async def test_abandoning_removes_only_an_admitting_job_and_owes_its_release(store: SqlJobStore) -> None:
    left, resumed = admitting("a", 0), admitting("a", 1)
    await store.insert([(left, "", SPEC), (resumed, "", SPEC)])
    await store.enqueue([queued(resumed)])

    assert await store.abandon(left.id, effects.on_abandon(left))
    assert not await store.abandon(resumed.id, effects.on_abandon(resumed)), "a queued job stays"
    assert await store.get(None, left.id) is None
    assert await store.get(None, resumed.id) is not None
    assert await store.enqueue([queued(left)]) == {}, "a late retry cannot queue an abandoned job"
    assert await outbox_keys(store.engine) == [(effects.USAGE_RELEASE, left.id)]
