"""The queue's claim on PostgreSQL: which job goes next, by priority, owner turns and age, within caps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.adapters import codec
from jobs.adapters.queue_sql import SqlQueue
from jobs.adapters.tables import jobs, owner_turns
from jobs.domain.jobs import Job, JobState, Priority
from jobs.service.ports import ExecutionSpec
from tests.support.job_values import make_job

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = START + timedelta(hours=1)


async def add(
    engine: AsyncEngine,
    owner: str,
    minute: int,
    priority: Priority = Priority.NORMAL,
    state: JobState = JobState.QUEUED,
    not_before: datetime = START,
) -> str:
    job = make_job(owner, state, START + timedelta(minutes=minute), priority=priority)
    row = {
        **codec.to_row(job),
        "request_hash": "",
        "workflow_json": "{}",
        "files": [],
        "next_attempt_time": not_before,
    }
    if state is JobState.RUNNING:
        row |= {"lease_owner": "elsewhere", "lease_expires": NOW + timedelta(minutes=5)}
    async with engine.begin() as connection:
        await connection.execute(insert(jobs).values(**row))
    return job.id


async def turn(engine: AsyncEngine, owner: str, minute: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(owner_turns).values(
                owner=f"users/{owner}", last_dispatch_time=START + timedelta(minutes=minute)
            )
        )


async def claim_one(queue: SqlQueue, cap: int = 2) -> tuple[Job, ExecutionSpec] | None:
    """What a dispatcher with one free slot gets: a job to take over, else the best queued one."""
    taken = await queue.take_over("w", 30, NOW)
    if taken is not None:
        return taken
    claimed = await queue.claim_many("w", 30, cap, NOW, 1)
    return claimed[0] if claimed else None


async def claim(engine: AsyncEngine, cap: int = 2) -> str | None:
    claimed = await claim_one(SqlQueue(engine), cap)
    return None if claimed is None else claimed[0].id


async def test_higher_priority_goes_first_then_the_owner_whose_turn_is_oldest_then_fifo(
    engine: AsyncEngine,
) -> None:
    a_old, a_new = await add(engine, "a", 1), await add(engine, "a", 2)
    b_old = await add(engine, "b", 3)
    urgent = await add(engine, "c", 9, Priority.HIGH)
    await turn(engine, "a", 30)  # a ran something recently; b never did
    assert await claim(engine) == urgent
    assert await claim(engine) == b_old  # b's turn: never dispatched
    assert await claim(engine) == a_old  # then a, oldest first
    assert await claim(engine) == a_new
    assert await claim(engine) is None


async def test_an_owner_at_its_cap_and_jobs_waiting_for_a_retry_are_passed_over(engine: AsyncEngine) -> None:
    await add(engine, "busy", 0, state=JobState.RUNNING)
    await add(engine, "busy", 0, state=JobState.RUNNING)
    await add(engine, "busy", 1)
    await add(engine, "later", 2, not_before=NOW + timedelta(seconds=30))
    ready = await add(engine, "later", 3)
    idle = await add(engine, "idle", 4)
    assert {await claim(engine), await claim(engine)} == {ready, idle}
    assert await claim(engine) is None
    assert await claim(engine, cap=3) is not None  # the busy owner, once its cap allows


async def test_concurrent_claimers_never_take_the_same_job(engine: AsyncEngine) -> None:
    queued = {await add(engine, f"o{i % 5}", i) for i in range(20)}
    claimed = await asyncio.gather(*(claim(engine, cap=10) for _ in range(20)))
    assert sorted(c for c in claimed if c) == sorted(queued)
    async with engine.connect() as connection:
        running = await connection.scalar(text("SELECT count(*) FROM jobs WHERE state = 'running'"))
    assert running == 20


async def test_a_batch_takes_the_owners_in_turn_and_never_more_than_a_cap_allows(engine: AsyncEngine) -> None:
    a = [await add(engine, "a", m) for m in (1, 2, 3)]
    b = [await add(engine, "b", m) for m in (4, 5)]
    await add(engine, "c", 0, state=JobState.RUNNING)
    c = await add(engine, "c", 6)
    await turn(engine, "a", 50)
    claimed = await SqlQueue(engine).claim_many("w", 30, 2, NOW, 10)
    ids = [job.id for job, _ in claimed]
    # a and b may each run two; c already runs one of its two. Oldest first within each owner.
    assert sorted(ids) == sorted([a[0], a[1], b[0], b[1], c])
    assert ids.index(a[0]) < ids.index(a[1])
    assert await SqlQueue(engine).claim_many("w", 30, 2, NOW, 10) == []
    assert [job.id for job, _ in await SqlQueue(engine).claim_many("w", 30, 3, NOW, 10)] == [a[2]]


async def requeue(engine: AsyncEngine, job_id: str, **values: object) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    async with engine.begin() as connection:
        statement = text(f"UPDATE jobs SET {assignments} WHERE id = :id")
        await connection.execute(statement, {"id": job_id, **values})


async def test_a_claim_says_whether_its_attempt_may_have_reached_inference(engine: AsyncEngine) -> None:
    job_id = await add(engine, "a", 1)
    queue = SqlQueue(engine)

    async def take() -> tuple[int, bool]:
        claimed = await claim_one(queue)
        assert claimed is not None
        return claimed[0].attempt_count, claimed[1].new_execution

    assert await take() == (1, True)
    # Inference refused before accepting (it may have submitted all the same): queued with the same attempt.
    await requeue(engine, job_id, state="queued", attempt_count=0)
    assert await take() == (1, False)
    # The attempt failed and is retried: the next attempt is new.
    await requeue(engine, job_id, state="queued")
    assert await take() == (2, True)
    # Its dispatcher died: the takeover re-attaches to the same attempt.
    await requeue(engine, job_id, lease_expires=NOW - timedelta(minutes=1))
    assert await take() == (2, False)
