"""The usage ledger: each job's units are reserved at admission, then committed or released exactly once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from servicekit import errors


class ReservationState(StrEnum):
    """Where a job's reservation is in its life: held, then used or given back."""

    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"


@dataclass(frozen=True)
class Period:
    """A billing period, [start, end)."""

    start: datetime
    end: datetime


def calendar_month(now: datetime) -> Period:
    """The UTC calendar month holding `now`: the period of owners without a paid subscription."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return Period(start, end)


@dataclass(frozen=True)
class Reservation:
    """The ledger entry of one job; `job` ("jobs/{id}") is its key."""

    job: str
    owner: str
    units: int
    state: ReservationState
    period_start: datetime
    request_id: str
    create_time: datetime
    update_time: datetime

    def settle(self, target: ReservationState, now: datetime) -> Reservation:
        """The reservation moved to `target`; settling again in the same direction changes nothing."""
        if self.state is target:
            return self
        if self.state is not ReservationState.RESERVED:
            raise errors.FailedPrecondition(
                f"the reservation of {self.job} is already {self.state.value}",
                reason=f"RESERVATION_{self.state.name}",
                metadata={"job": self.job, "state": self.state.value},
            )
        return replace(self, state=target, update_time=now)


@dataclass(frozen=True)
class Usage:
    """An owner's consumption in one period against its plan's quota."""

    owner: str
    plan_id: str
    used: int
    reserved: int
    quota: int
    period: Period

    @property
    def available(self) -> int:
        """Units still free in this period, never below zero."""
        return max(0, self.quota - self.used - self.reserved)

    def admit(self, units: int, now: datetime) -> None:
        """Raises ResourceExhausted (QUOTA_EXCEEDED, with the reset time) unless `units` fit."""
        if units > self.available:
            raise self.exhausted(now)

    def exhausted(self, now: datetime) -> errors.ResourceExhausted:
        """The refusal of a reservation that does not fit, naming the reset time."""
        return errors.ResourceExhausted(
            f"the {self.plan_id} plan allows {self.quota} jobs per period; {self.used} used and "
            f"{self.reserved} reserved, resets at {self.period.end.isoformat()}",
            reason="QUOTA_EXCEEDED",
            metadata={
                "quota_units": str(self.quota),
                "used_units": str(self.used),
                "reserved_units": str(self.reserved),
                "reset_time": self.period.end.isoformat().replace("+00:00", "Z"),
            },
            retry_after=max(0.0, (self.period.end - now).total_seconds()),
        )
