"""Jobs in PostgreSQL: admission rows, reads, fenced state changes with their outbox messages.

Every change a dispatcher makes to a running job is fenced by `lease_owner`, so a dispatcher that lost its
lease (and whose job another replica took over) can never overwrite the newer state. A single statement runs
on an autocommit connection (no BEGIN and COMMIT round trips); only a change with outbox messages needs a
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    DateTime,
    Integer,
    Text,
    and_,
    case,
    column,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jobs.adapters import codec
from jobs.adapters.tables import jobs, outbox
from jobs.domain.effects import OutboxMessage
from jobs.domain.jobs import Job, JobState
from jobs.service.ports import ExecutionSpec, JobFilter, PageCursor
from servicekit import db


def _payload(message: OutboxMessage) -> dict[str, object]:
    return {k: codec.to_json(v) if isinstance(v, Job) else v for k, v in message.payload.items()}


async def write_outbox(connection: AsyncConnection, messages: Sequence[OutboxMessage], now: datetime) -> None:
    """Adds side effects in one statement; one already written under the same topic and key is kept."""
    if messages:
        await connection.execute(_outbox_insert(messages, now, after=None))


def _outbox_insert(messages: Sequence[OutboxMessage], now: datetime, after: CTE | None) -> PgInsert:
    """The insert of `messages`; with `after`, only if that data-modifying CTE changed a row."""
    rows = values(column("topic", Text), column("key", Text), column("payload", JSONB), name="message").data(
        [(m.topic, m.key, _payload(m)) for m in messages]
    )
    chosen = select(
        rows.c.topic,
        rows.c.key,
        rows.c.payload,
        literal(now, DateTime(timezone=True)),
        literal(now, DateTime(timezone=True)),
        literal(0, Integer),
    )
    if after is not None:
        chosen = chosen.where(exists(after.select()))
    names = ["topic", "key", "payload", "create_time", "available_time", "attempts"]
    insert = pg_insert(outbox).from_select(names, chosen)
    return insert.on_conflict_do_nothing(index_elements=[outbox.c.topic, outbox.c.key])


def _queue_position() -> ColumnElement[int]:
    """A queued job's place among the queued jobs by priority and age (1 is first); 0 for any other state."""
    ahead = jobs.alias("ahead")
    count = (
        select(func.count())
        .select_from(ahead)
        .where(
            ahead.c.state == JobState.QUEUED.value,
            or_(
                ahead.c.priority > jobs.c.priority,
                and_(ahead.c.priority == jobs.c.priority, ahead.c.create_time < jobs.c.create_time),
            ),
        )
        .scalar_subquery()
    )
    return case((jobs.c.state == JobState.QUEUED.value, count + 1), else_=0).label("queue_position")


QUEUE_POSITION = _queue_position()
_INSERT = pg_insert(jobs).on_conflict_do_nothing().returning(jobs.c.id)

# Queues a batch of admitted jobs and counts, per priority, the jobs queued before it (the CTE sees the
# table as it was before the update): enough to place every job of the batch without a count per job.
_ENQUEUE = text("""
    WITH ahead AS (
        SELECT priority, count(*) AS queued FROM jobs WHERE state = 'queued' GROUP BY priority
    ), moved AS (
        UPDATE jobs SET state = 'queued', update_time = x.update_time, sequence = x.sequence
        FROM unnest(CAST(:ids AS uuid[]), CAST(:times AS timestamptz[]), CAST(:sequences AS bigint[]))
            AS x(id, update_time, sequence)
        WHERE jobs.id = x.id AND jobs.state = 'admitting'
        RETURNING jobs.id
    )
    SELECT CAST(moved.id AS text) AS id, array(SELECT ARRAY[priority, queued] FROM ahead) AS by_priority
    FROM moved
""")


def _job(row: Any) -> Job:
    return codec.from_row(row, row.queue_position)


class SqlJobStore:
    """The jobs table behind the service's JobStore port."""

    def __init__(self, engine: AsyncEngine, outbox_written: Callable[[], None] = lambda: None) -> None:
        self.engine = engine
        self.single = db.autocommit(engine)
        self.outbox_written = outbox_written  # called after each commit that wrote outbox messages

    async def find_by_request(self, owner: str, request_id: str) -> tuple[Job, str] | None:
        async with self.single.connect() as connection:
            row = (
                await connection.execute(
                    select(jobs).where(jobs.c.owner == owner, jobs.c.request_id == request_id)
                )
            ).first()
        return (codec.from_row(row), row.request_hash) if row else None

    async def insert(self, rows: Sequence[tuple[Job, str, ExecutionSpec]]) -> set[str]:
        values = [
            {
                **codec.to_row(job),
                "request_hash": request_hash,
                "workflow_json": spec.workflow_json,
                "files": [[f, key] for f, key in spec.files],
                "next_attempt_time": job.create_time,
            }
            for job, request_hash, spec in rows
        ]
        async with self.single.connect() as connection:
            return {str(row.id) for row in await connection.execute(_INSERT, values)}

    async def enqueue(self, queued: Sequence[Job]) -> dict[str, Job]:
        values = {
            "ids": [job.id for job in queued],
            "times": [job.update_time for job in queued],
            "sequences": [job.sequence for job in queued],
        }
        async with self.single.connect() as connection:
            rows = (await connection.execute(_ENQUEUE, values)).all()
        if not rows:
            return {}
        moved = {row.id for row in rows}
        before = {int(priority): int(count) for priority, count in rows[0].by_priority}
        placed: dict[str, Job] = {}
        # Best first: the batch queues behind every job of its priority or higher already queued.
        for job in sorted(queued, key=lambda j: (-j.priority, j.create_time, j.id)):
            if job.id in moved:
                ahead = sum(n for priority, n in before.items() if priority >= job.priority) + len(placed)
                placed[job.id] = replace(job, queue_position=ahead + 1)
        return placed

    async def discard(self, job_id: str) -> None:
        async with self.single.connect() as connection:
            await connection.execute(
                delete(jobs).where(jobs.c.id == job_id, jobs.c.state == JobState.ADMITTING)
            )

    async def abandon(self, job_id: str, messages: Sequence[OutboxMessage]) -> bool:
        fence = (jobs.c.id == job_id, jobs.c.state == JobState.ADMITTING.value)
        async with self.engine.begin() as connection:
            result = await connection.execute(delete(jobs).where(*fence))
            if result.rowcount != 1:
                return False
            await write_outbox(connection, messages, datetime.now(UTC))
        self.outbox_written()
        return True

    async def save(
        self,
        job: Job,
        expected: JobState,
        messages: Sequence[OutboxMessage] = (),
        worker: str | None = None,
        next_attempt_time: datetime | None = None,
    ) -> bool:
        """Writes `job` if the row is still in `expected` (and leased by `worker`, when given)."""
        values = codec.to_row(job)
        if next_attempt_time is not None:
            values["next_attempt_time"] = next_attempt_time
        if job.state is not JobState.RUNNING:
            values.update(lease_owner=None, lease_expires=None)
        elif expected is JobState.RUNNING:
            # The dispatcher's copy of a running job predates a CancelJob that set the flag in the row; a
            # progress save must not clear it, or the interrupt that follows would look like a lost backend.
            values["cancel_requested"] = or_(jobs.c.cancel_requested, literal(job.cancel_requested))
        fence = [jobs.c.id == job.id, jobs.c.state == expected.value]
        if worker is not None:
            fence.append(jobs.c.lease_owner == worker)
        statement = update(jobs).where(*fence).values(**values)
        if not messages:
            async with self.single.connect() as connection:
                return bool((await connection.execute(statement)).rowcount == 1)
        # The change and its outbox messages in one statement: atomic, one round trip.
        changed = statement.returning(jobs.c.id).cte("changed")
        written = _outbox_insert(messages, job.update_time, after=changed).cte("written")
        both = select(func.count()).select_from(changed).add_cte(written)
        async with self.single.connect() as connection:
            if (await connection.execute(both)).scalar_one() != 1:
                return False
        self.outbox_written()
        return True

    async def get(self, owner: str | None, job_id: str) -> Job | None:
        condition = [jobs.c.id == job_id, jobs.c.state != JobState.ADMITTING.value]
        if owner is not None:
            condition.append(jobs.c.owner == owner)
        async with self.single.connect() as connection:
            row = (await connection.execute(select(jobs, QUEUE_POSITION).where(*condition))).first()
        return _job(row) if row else None

    async def page(self, owner: str, where: JobFilter, size: int, cursor: PageCursor | None) -> list[Job]:
        conditions = [jobs.c.owner == owner, jobs.c.state != JobState.ADMITTING.value]
        if where.states:
            conditions.append(jobs.c.state.in_([s.value for s in where.states]))
        if where.preset:
            conditions.append(jobs.c.source["preset"].astext == where.preset)
        if where.created_from:
            conditions.append(jobs.c.create_time >= where.created_from)
        if where.created_before:
            conditions.append(jobs.c.create_time < where.created_before)
        for key, operator, value in where.labels:
            if operator == "exists":
                conditions.append(jobs.c.labels.has_key(key))
            elif operator == "=":
                conditions.append(jobs.c.labels[key].astext == value)
            else:
                conditions.append(or_(~jobs.c.labels.has_key(key), jobs.c.labels[key].astext != value))
        if cursor is not None:
            conditions.append(
                or_(
                    jobs.c.create_time < cursor.create_time,
                    and_(jobs.c.create_time == cursor.create_time, jobs.c.id < cursor.job_id),
                )
            )
        statement = (
            select(jobs, QUEUE_POSITION)
            .where(*conditions)
            .order_by(jobs.c.create_time.desc(), jobs.c.id.desc())
            .limit(size)
        )
        async with self.single.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [_job(row) for row in rows]

    async def overdue(self, now: datetime, limit: int) -> list[Job]:
        """Queued jobs whose deadline has passed."""
        async with self.single.connect() as connection:
            rows = (
                await connection.execute(
                    select(jobs)
                    .where(jobs.c.state == JobState.QUEUED.value, jobs.c.deadline < now)
                    .limit(limit)
                )
            ).all()
        return [codec.from_row(row) for row in rows]

    async def stale_admissions(self, older_than: datetime, limit: int) -> list[Job]:
        """Admissions a crashed replica left half done."""
        async with self.single.connect() as connection:
            rows = (
                await connection.execute(
                    select(jobs)
                    .where(jobs.c.state == JobState.ADMITTING.value, jobs.c.create_time < older_than)
                    .limit(limit)
                )
            ).all()
        return [codec.from_row(row) for row in rows]
