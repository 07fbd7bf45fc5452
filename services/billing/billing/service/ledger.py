"""Use cases of the usage ledger: reserve at admission, commit on success, release on failure.

Each is keyed by job, so a retried call never charges twice; reservations of one owner are serialized,
so two concurrent admissions cannot both take the last unit of a quota.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Protocol

from billing.domain.plans import Plan
from billing.domain.usage import Period, Reservation, ReservationState, Usage, calendar_month
from servicekit import errors


class LedgerStore(Protocol):
    """The ledger's storage inside one transaction; the SQL adapter and the unit tests' twin implement it."""

    async def lock_owner(self, owner: str) -> None:
        """Serializes ledger changes of one owner until the transaction ends."""

    async def get(self, job: str) -> Reservation | None:
        """The reservation of `job`, if any."""

    async def save(self, reservation: Reservation) -> None:
        """Inserts or updates a reservation."""

    async def totals(self, owner: str, period_start: datetime) -> tuple[int, int]:
        """Units (committed, still reserved) of `owner` in the period starting at `period_start`."""


Transaction = Callable[[], AbstractAsyncContextManager[LedgerStore]]


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Reserves, commits and releases usage units against each owner's plan."""

    def __init__(
        self, transaction: Transaction, plan_of: Callable[[str], Plan], clock: Callable[[], datetime] = _now
    ) -> None:
        self.transaction = transaction
        self.plan_of = plan_of
        self.clock = clock

    def period(self, owner: str) -> Period:
        """The owner's current billing period (the calendar month until paid subscriptions exist)."""
        return calendar_month(self.clock())

    async def _usage(self, store: LedgerStore, owner: str) -> Usage:
        plan, period = self.plan_of(owner), self.period(owner)
        used, reserved = await store.totals(owner, period.start)
        return Usage(owner, plan.plan_id, used, reserved, plan.monthly_job_quota, period)

    async def reserve(self, owner: str, job: str, units: int, request_id: str) -> tuple[Reservation, Usage]:
        """Holds `units` for `job`; a repeat for the same job returns the existing reservation."""
        now = self.clock()
        async with self.transaction() as store:
            await store.lock_owner(owner)
            existing = await store.get(job)
            if existing is not None:
                if (existing.owner, existing.units) != (owner, units):
                    raise errors.AlreadyExists(
                        f"{job} is already reserved with another owner or unit count",
                        reason="RESERVATION_MISMATCH",
                        metadata={"job": job},
                    )
                return existing, await self._usage(store, owner)
            usage = await self._usage(store, owner)
            usage.admit(units, now)
            reservation = Reservation(
                job, owner, units, ReservationState.RESERVED, usage.period.start, request_id, now, now
            )
            await store.save(reservation)
            return reservation, await self._usage(store, owner)

    async def settle(self, owner: str, job: str, target: ReservationState) -> Reservation:
        """Commits or releases the reservation of `job`; idempotent in the same direction."""
        async with self.transaction() as store:
            await store.lock_owner(owner)
            current = await store.get(job)
            if current is None or current.owner != owner:
                raise errors.NotFound(
                    f"{job} has no reservation", reason="RESERVATION_NOT_FOUND", metadata={"job": job}
                )
            settled = current.settle(target, self.clock())
            if settled is not current:
                await store.save(settled)
            return settled

    async def usage(self, owner: str) -> Usage:
        """The owner's usage in the current period."""
        async with self.transaction() as store:
            return await self._usage(store, owner)
