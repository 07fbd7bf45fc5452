"""The usage ledger in PostgreSQL: one row per job, owner changes serialized by an advisory lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billing.adapters.tables import reservations
from billing.domain.usage import Reservation, ReservationState
from billing.service.ledger import Transaction


class SqlLedgerStore:
    """The ledger's storage on one connection inside one transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def lock_owner(self, owner: str) -> None:
        await self.connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"billing.owner:{owner}"}
        )

    async def get(self, job: str) -> Reservation | None:
        row = (await self.connection.execute(select(reservations).where(reservations.c.job == job))).first()
        if row is None:
            return None
        return Reservation(
            job=row.job,
            owner=row.owner,
            units=row.units,
            state=ReservationState(row.state),
            period_start=row.period_start,
            request_id=row.request_id,
            create_time=row.create_time,
            update_time=row.update_time,
        )

    async def save(self, reservation: Reservation) -> None:
        values = {
            "job": reservation.job,
            "owner": reservation.owner,
            "units": reservation.units,
            "state": reservation.state.value,
            "period_start": reservation.period_start,
            "request_id": reservation.request_id,
            "create_time": reservation.create_time,
            "update_time": reservation.update_time,
        }
        statement = insert(reservations).values(**values)
        await self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[reservations.c.job],
                set_={"state": statement.excluded.state, "update_time": statement.excluded.update_time},
            )
        )

    async def totals(self, owner: str, period_start: datetime) -> tuple[int, int]:
        def units_in(state: ReservationState) -> Any:
            return func.coalesce(
                func.sum(case((reservations.c.state == state.value, reservations.c.units))), 0
            )

        row = (
            await self.connection.execute(
                select(units_in(ReservationState.COMMITTED), units_in(ReservationState.RESERVED)).where(
                    reservations.c.owner == owner, reservations.c.period_start == period_start
                )
            )
        ).one()
        return int(row[0]), int(row[1])


def transactions(engine: AsyncEngine) -> Transaction:
    """A factory of transactions over `engine`, each yielding a ledger store; commits when the block ends."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[SqlLedgerStore]:
        async with engine.begin() as connection:
            yield SqlLedgerStore(connection)

    return transaction
