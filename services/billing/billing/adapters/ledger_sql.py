"""The usage ledger in PostgreSQL: reservations and per-period totals, changed by migration 0003's functions.

Each change is one call of `reserve_units` or `settle_units` on an autocommit connection: the function's own
transaction makes it atomic, and the owner's totals row serializes that owner's reservations.
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


RESERVE = text("SELECT * FROM reserve_units(:job, :owner, :units, :period_start, :quota, :request_id, :now)")
SETTLE = text("SELECT * FROM settle_units(:job, :owner, :target, :now)")


class SqlLedgerStore:
    """The LedgerStore port on PostgreSQL."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = db.autocommit(engine)

    async def reserve(self, candidate: Reservation, quota: int) -> Reserved:
        arguments = {
            "job": candidate.job,
            "owner": candidate.owner,
            "units": candidate.units,
            "period_start": candidate.period_start,
            "quota": quota,
            "request_id": candidate.request_id,
            "now": candidate.create_time,
        }
        async with self.engine.connect() as connection:
            row = (await connection.execute(RESERVE, arguments)).one()
        reservation = _reservation(candidate.job, row)
        return Reserved(row.created, reservation, row.committed_units, row.reserved_units)

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
