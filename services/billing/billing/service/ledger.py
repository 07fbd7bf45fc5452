"""Use cases of the usage ledger: reserve at admission, commit on success, release on failure.

Each is keyed by job, so a retried call never charges twice. The store makes each change atomically, one
owner's reservations one at a time, so two concurrent admissions cannot both take the last unit of a quota.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from billing.domain.plans import Plan
from billing.domain.usage import Period, Reservation, ReservationState, Usage, calendar_month
from servicekit import errors


@dataclass(frozen=True)
class Reserved:
    """A reservation attempt: the job's reservation (None when it did not fit) and the owner's totals."""

    created: bool
    reservation: Reservation | None
    used: int
    reserved: int


class LedgerStore(Protocol):
    """The ledger's storage; the SQL adapter implements it with one database call per change."""

    async def reserve(self, candidate: Reservation, quota: int) -> Reserved:
        """Saves `candidate` unless its job already has a reservation or the units do not fit in `quota`."""

    async def settle(
        self, owner: str, job: str, target: ReservationState, now: datetime
    ) -> Reservation | None:
        """Moves the owner's reservation of `job` from RESERVED to `target`; returns it as it now is."""

    async def totals(self, owner: str, period_start: datetime) -> tuple[int, int]:
        """Units (committed, still reserved) of `owner` in the period starting at `period_start`."""


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Reserves, commits and releases usage units against each owner's plan."""

    def __init__(
        self, store: LedgerStore, plan_of: Callable[[str], Plan], clock: Callable[[], datetime] = _now
    ) -> None:
        self.store = store
        self.plan_of = plan_of
        self.clock = clock

    def period(self, owner: str) -> Period:
        """The owner's current billing period (the calendar month until paid subscriptions exist)."""
        return calendar_month(self.clock())

    async def reserve(self, owner: str, job: str, units: int, request_id: str) -> tuple[Reservation, Usage]:
        """Holds `units` for `job`; a repeat for the same job returns the existing reservation."""
        now = self.clock()
        plan, period = self.plan_of(owner), self.period(owner)
        candidate = Reservation(
            job, owner, units, ReservationState.RESERVED, period.start, request_id, now, now
        )
        outcome = await self.store.reserve(candidate, plan.monthly_job_quota)
        usage = Usage(owner, plan.plan_id, outcome.used, outcome.reserved, plan.monthly_job_quota, period)
        existing = outcome.reservation
        if existing is None:
            raise usage.exhausted(now)
        if not outcome.created and (existing.owner, existing.units) != (owner, units):
            raise errors.AlreadyExists(
                f"{job} is already reserved with another owner or unit count",
                reason="RESERVATION_MISMATCH",
                metadata={"job": job},
            )
        return existing, usage

    async def settle(self, owner: str, job: str, target: ReservationState) -> Reservation:
        """Commits or releases the reservation of `job`; idempotent in the same direction."""
        now = self.clock()
        current = await self.store.settle(owner, job, target, now)
        if current is None:
            raise errors.NotFound(
                f"{job} has no reservation", reason="RESERVATION_NOT_FOUND", metadata={"job": job}
            )
        # Already settled: the same direction is a repeat, the other way is refused.
        return current.settle(target, now)

    async def usage(self, owner: str) -> Usage:
        """The owner's usage in the current period."""
        plan, period = self.plan_of(owner), self.period(owner)
        used, reserved = await self.store.totals(owner, period.start)
        return Usage(owner, plan.plan_id, used, reserved, plan.monthly_job_quota, period)
