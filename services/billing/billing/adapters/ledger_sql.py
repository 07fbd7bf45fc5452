"""The usage ledger in PostgreSQL: reservations and per-period totals, changed by migration 0003's functions.

Each change is one statement on an autocommit connection calling `reserve_units` (once per job of a batch)
or `settle_units`: the statement's own transaction makes it atomic, and the owner's totals row serializes
that owner's reservations. A batch calls them in owner order, so two batches lock owners in the same order
and never deadlock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from billing.adapters.tables import usage_totals
from billing.domain.usage import Reservation, ReservationState
from billing.service.ledger import Reserved
from servicekit import db


def _reservation(job: str, row: Any) -> Reservation | None:
    if row is None or row.owner is None:
        return None
    return Reservation(
        job=job,
        owner=row.owner,
        units=row.units,
        state=ReservationState(row.state),
        period_start=row.period_start,
        request_id=row.request_id,
        create_time=row.create_time,
        update_time=row.update_time,
    )


RESERVE = text("""
    SELECT r.* FROM unnest(
        CAST(:jobs AS text[]), CAST(:owners AS text[]), CAST(:units AS bigint[]),
        CAST(:period_starts AS timestamptz[]), CAST(:quotas AS bigint[]), CAST(:request_ids AS text[]),
        CAST(:times AS timestamptz[])
    ) WITH ORDINALITY AS x(job, owner, units, period_start, quota, request_id, at, place)
    CROSS JOIN LATERAL reserve_units(x.job, x.owner, x.units, x.period_start, x.quota, x.request_id, x.at) r
    ORDER BY x.place
""")
SETTLE = text("SELECT * FROM settle_units(:job, :owner, :target, :now)")


class SqlLedgerStore:
    """The LedgerStore port on PostgreSQL."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = db.autocommit(engine)

    async def reserve(self, candidates: list[tuple[Reservation, int]]) -> list[Reserved]:
        order = sorted(range(len(candidates)), key=lambda i: candidates[i][0].owner)
        ordered = [candidates[i] for i in order]
        arguments = {
            "jobs": [c.job for c, _ in ordered],
            "owners": [c.owner for c, _ in ordered],
            "units": [c.units for c, _ in ordered],
            "period_starts": [c.period_start for c, _ in ordered],
            "quotas": [quota for _, quota in ordered],
            "request_ids": [c.request_id for c, _ in ordered],
            "times": [c.create_time for c, _ in ordered],
        }
        async with self.engine.connect() as connection:
            rows = (await connection.execute(RESERVE, arguments)).all()
        found: dict[int, Reserved] = {}
        for index, (candidate, _), row in zip(order, ordered, rows, strict=True):
            reservation = _reservation(candidate.job, row)
            found[index] = Reserved(row.created, reservation, row.committed_units, row.reserved_units)
        return [found[i] for i in range(len(candidates))]

    async def settle(
        self, owner: str, job: str, target: ReservationState, now: datetime
    ) -> Reservation | None:
        arguments = {"job": job, "owner": owner, "target": target.value, "now": now}
        async with self.engine.connect() as connection:
            row = (await connection.execute(SETTLE, arguments)).first()
        return _reservation(job, row)

    async def totals(self, owner: str, period_start: datetime) -> tuple[int, int]:
        statement = select(usage_totals.c.committed, usage_totals.c.reserved).where(
            usage_totals.c.owner == owner, usage_totals.c.period_start == period_start
        )
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return (int(row.committed), int(row.reserved)) if row else (0, 0)
