"""The durable queue's claims in PostgreSQL: `FOR UPDATE SKIP LOCKED`, leases, fair turns between owners.

Order: priority first; among owners, the one whose last dispatch is oldest (round robin); within an owner,
first in first out. An owner at its cap of running jobs is skipped. A running job whose lease ran out (its
dispatcher died) is taken over with the same attempt, so the new dispatcher re-attaches to the execution.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.adapters import codec
from jobs.domain.effects import SNAPSHOT
from jobs.domain.jobs import Job, next_sequence
from jobs.service.ports import ExecutionSpec, Outbox, OutboxItem
from servicekit import db

# Candidates per owner in the fast claim: enough that a few replicas claiming at once rarely all lock the
# same heads and fall back to the exhaustive claim.
HEADS_PER_OWNER = 4

_TAKE_OVER = text("""
    UPDATE jobs SET lease_owner = :worker, lease_expires = :until, update_time = :now
    WHERE id = (SELECT id FROM jobs WHERE state = 'running' AND lease_expires < :now
                ORDER BY lease_expires LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING *
""")

# The end of both claims: starts the chosen candidates and records their owners' turn, in the claim's own
# statement (one round trip, atomic without a transaction of its own).
_START = """, claimed AS (
        UPDATE jobs SET state = 'running', attempt_count = jobs.attempt_count + 1, lease_owner = :worker,
            lease_expires = :until, start_time = coalesce(jobs.start_time, :now), update_time = :now,
            sequence = greatest(jobs.sequence + 1, :sequence), progress = NULL, cancel_requested = false,
            submitted_attempts = greatest(jobs.submitted_attempts, jobs.attempt_count + 1)
        FROM candidate WHERE jobs.id = candidate.id
        RETURNING jobs.*, jobs.attempt_count > candidate.submitted_attempts AS new_execution
    ), turns AS (
        INSERT INTO owner_turns (owner, last_dispatch_time) SELECT DISTINCT owner, :now FROM claimed
        ON CONFLICT (owner) DO UPDATE SET last_dispatch_time = excluded.last_dispatch_time
    )
    SELECT * FROM claimed
"""

# Each owner's first eligible jobs (found by skipping through the owners that have queued jobs, one index
# probe each), then the best `limit` of those heads, one per owner in each round and never more than an
# owner's cap allows: the cost grows with the number of owners waiting, not with the depth of the queue, and
# is shared by a batch. When every head is locked by other claimers, _CLAIM_ANY looks at the whole queue.
_CLAIM = text(f"""
    WITH RECURSIVE owners AS (
        (SELECT owner FROM jobs WHERE state = 'queued' ORDER BY owner LIMIT 1)
        UNION ALL
        SELECT (SELECT j.owner FROM jobs j WHERE j.state = 'queued' AND j.owner > o.owner
                ORDER BY j.owner LIMIT 1)
        FROM owners o WHERE o.owner IS NOT NULL
    ), busy AS (
        SELECT owner, count(*) AS running FROM jobs WHERE state = 'running' GROUP BY owner
    ), heads AS (
        SELECT h.id, h.priority, h.create_time, h.place, t.last_dispatch_time
        FROM owners o
        LEFT JOIN busy b ON b.owner = o.owner
        LEFT JOIN owner_turns t ON t.owner = o.owner
        CROSS JOIN LATERAL (
            SELECT first.*,
                row_number() OVER (ORDER BY first.priority DESC, first.create_time, first.id) AS place
            FROM (
                SELECT q.id, q.priority, q.create_time FROM jobs q
                WHERE q.owner = o.owner AND q.state = 'queued' AND q.next_attempt_time <= :now
                ORDER BY q.priority DESC, q.create_time, q.id LIMIT :heads
            ) first
        ) h
        WHERE o.owner IS NOT NULL AND h.place <= :cap - coalesce(b.running, 0)
    ), candidate AS (
        SELECT j.id, j.submitted_attempts FROM jobs j JOIN heads h ON h.id = j.id
        WHERE j.state = 'queued'
        ORDER BY h.priority DESC, h.place, h.last_dispatch_time ASC NULLS FIRST, h.create_time, h.id
        LIMIT :limit FOR UPDATE OF j SKIP LOCKED
    ){_START}""")

# The same choice over every queued job: exhaustive, and slower the deeper the queue.
_CLAIM_ANY = text(f"""
    WITH busy AS (
        SELECT owner, count(*) AS running FROM jobs WHERE state = 'running' GROUP BY owner
    ), candidate AS (
        SELECT j.id, j.submitted_attempts FROM jobs j
        LEFT JOIN owner_turns t ON t.owner = j.owner
        LEFT JOIN busy b ON b.owner = j.owner
        WHERE j.state = 'queued' AND j.next_attempt_time <= :now AND coalesce(b.running, 0) < :cap
        ORDER BY j.priority DESC, t.last_dispatch_time ASC NULLS FIRST, j.create_time, j.id
        LIMIT 1 FOR UPDATE OF j SKIP LOCKED
    ){_START}""")

_RELEASE = text("""
    UPDATE jobs SET lease_expires = :now WHERE state = 'running' AND lease_owner = :worker
""")

_RENEW = text("""
    UPDATE jobs SET lease_expires = :until
    WHERE id = :id AND state = 'running' AND lease_owner = :worker
    RETURNING cancel_requested
""")


def _spec(row: object) -> ExecutionSpec:
    data = row._mapping  # type: ignore[attr-defined]
    files = tuple((f, key) for f, key in data["files"])
    return ExecutionSpec(data["workflow_json"], files, new_execution=bool(data.get("new_execution")))


class SqlQueue:
    """Claims and lease renewals on the jobs table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.single = db.autocommit(engine)  # every change here is one statement

    async def take_over(
        self, worker: str, lease_seconds: float, now: datetime
    ) -> tuple[Job, ExecutionSpec] | None:
        until = now + timedelta(seconds=lease_seconds)
        async with self.single.connect() as connection:
            taken = (
                await connection.execute(_TAKE_OVER, {"worker": worker, "until": until, "now": now})
            ).first()
        return None if taken is None else (codec.from_row(taken), _spec(taken))

    async def claim_many(
        self, worker: str, lease_seconds: float, per_owner_cap: int, now: datetime, limit: int
    ) -> list[tuple[Job, ExecutionSpec]]:
        values = {
            "worker": worker,
            "until": now + timedelta(seconds=lease_seconds),
            "now": now,
            "cap": per_owner_cap,
            "sequence": next_sequence(0, now),
            "heads": HEADS_PER_OWNER,
            "limit": limit,
        }
        async with self.single.connect() as connection:
            rows = (await connection.execute(_CLAIM, values)).all()
            if not rows:
                rows = (await connection.execute(_CLAIM_ANY, values)).all()
        ordered = sorted(rows, key=lambda row: (-row.priority, row.create_time))
        return [(codec.from_row(row), _spec(row)) for row in ordered]

    async def release_leases(self, worker: str) -> None:
        """Lets other replicas take this worker's running jobs over at once (on a graceful stop)."""
        async with self.single.connect() as connection:
            await connection.execute(_RELEASE, {"worker": worker, "now": datetime.now(UTC)})

    async def renew(self, job_id: str, worker: str, lease_seconds: float) -> bool | None:
        until = datetime.now(UTC) + timedelta(seconds=lease_seconds)
        async with self.single.connect() as connection:
            row = (await connection.execute(_RENEW, {"id": job_id, "worker": worker, "until": until})).first()
        return None if row is None else bool(row.cancel_requested)


_CLAIM_OUTBOX = text("""
    UPDATE outbox SET available_time = :hold_until, attempts = outbox.attempts + 1
    WHERE id IN (SELECT id FROM outbox WHERE done_time IS NULL AND available_time <= :now
                 AND topic = ANY(:topics) ORDER BY available_time, id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id, topic, key, payload, attempts
""")


# Oldest first along the primary key, so a pass stops at the first `limit` it finds among the oldest rows;
# rows another replica is deleting at the same moment are left to it.
_PRUNE_OUTBOX = text("""
    DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE done_time < :before ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
    )
""")


def _payload(stored: dict[str, object]) -> dict[str, object]:
    """A stored payload with its job snapshot (see effects.SNAPSHOT) decoded back into a Job."""
    payload = dict(stored)
    if isinstance(snapshot := payload.get(SNAPSHOT), dict):
        payload[SNAPSHOT] = codec.from_json(snapshot)
    return payload


class SqlOutbox(Outbox):
    """The outbox table; a claim hides a message from other relays until `hold_seconds` pass."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = db.autocommit(engine)

    async def claim(self, topics: Sequence[str], limit: int, hold_seconds: float) -> list[OutboxItem]:
        now = datetime.now(UTC)
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    _CLAIM_OUTBOX,
                    {
                        "now": now,
                        "hold_until": now + timedelta(seconds=hold_seconds),
                        "topics": list(topics),
                        "limit": limit,
                    },
                )
            ).all()
        return [OutboxItem(r.id, r.topic, r.key, _payload(r.payload), r.attempts) for r in rows]

    async def done(self, item_ids: Sequence[int]) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(
                text("UPDATE outbox SET done_time = now() WHERE id = ANY(:ids)"), {"ids": list(item_ids)}
            )

    async def retry(self, item_id: int, error: str, delay_seconds: float) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(
                text(
                    "UPDATE outbox SET available_time = now() + make_interval(secs => :delay), "
                    "last_error = :error WHERE id = :id"
                ),
                {"id": item_id, "delay": delay_seconds, "error": error[:500]},
            )

    async def prune(self, done_before: datetime, limit: int) -> int:
        async with self.engine.connect() as connection:
            result = await connection.execute(_PRUNE_OUTBOX, {"before": done_before, "limit": limit})
        return int(result.rowcount)
