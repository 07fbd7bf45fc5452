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


@dataclass(frozen=True)
class Wanted:
    """One reservation asked for: `units` of `owner`'s quota for `job`."""

    owner: str
    job: str
    units: int
    request_id: str


class LedgerStore(Protocol):
    """The ledger's storage; the SQL adapter implements it with one database call per change."""

    async def reserve(self, candidates: list[tuple[Reservation, int]]) -> list[Reserved]:
        """Saves each candidate unless its job already has a reservation or its units do not fit in the
        quota paired with it; candidates of one owner are judged in order, so a later one sees the earlier."""

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

    async def reserve(self, wanted: list[Wanted]) -> list[tuple[Reservation, Usage] | errors.DomainError]:
        """Holds units for each job, each judged on its own; a repeat for a job returns its reservation."""
        now = self.clock()
        terms = [(self.plan_of(w.owner), self.period(w.owner)) for w in wanted]
        candidates = [
            (
                Reservation(
                    w.job, w.owner, w.units, ReservationState.RESERVED, period.start, w.request_id, now, now
                ),
                plan.monthly_job_quota,
            )
            for w, (plan, period) in zip(wanted, terms, strict=True)
        ]
        outcomes = await self.store.reserve(candidates)
        judged: list[tuple[Reservation, Usage] | errors.DomainError] = []
        for w, (plan, period), outcome in zip(wanted, terms, outcomes, strict=True):
            usage = Usage(
                w.owner, plan.plan_id, outcome.used, outcome.reserved, plan.monthly_job_quota, period
            )
            judged.append(self._judge(w, usage, outcome, now))
        return judged

    @staticmethod
    def _judge(
        wanted: Wanted, usage: Usage, outcome: Reserved, now: datetime
    ) -> tuple[Reservation, Usage] | errors.DomainError:
        existing = outcome.reservation
        if existing is None:
            return usage.exhausted(now)
        if not outcome.created and (existing.owner, existing.units) != (wanted.owner, wanted.units):
            return errors.AlreadyExists(
                f"{wanted.job} is already reserved with another owner or unit count",
                reason="RESERVATION_MISMATCH",
                metadata={"job": wanted.job},
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
