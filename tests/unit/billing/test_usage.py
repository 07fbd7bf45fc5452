from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.domain.usage import Reservation, ReservationState, Usage, calendar_month
from servicekit import errors

NOW = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)


def test_the_free_period_is_the_utc_calendar_month_across_a_year_end() -> None:
    period = calendar_month(NOW)
    assert (period.start, period.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_over_quota_names_the_reset_time_and_retry_delay() -> None:
    usage = Usage("users/1", "free", used=2, reserved=1, quota=3, period=calendar_month(NOW))
    with pytest.raises(errors.ResourceExhausted) as raised:
        usage.admit(1, NOW)
    assert raised.value.reason == "QUOTA_EXCEEDED"
    assert raised.value.metadata["reset_time"] == "2027-01-01T00:00:00Z"
    assert raised.value.retry_after == 60.0


def test_available_units_never_go_below_zero() -> None:
    assert Usage("users/1", "free", used=5, reserved=1, quota=3, period=calendar_month(NOW)).available == 0


def reservation(state: ReservationState) -> Reservation:
    return Reservation("jobs/1", "users/1", 1, state, NOW, "r1", NOW, NOW)


def test_settling_twice_in_the_same_direction_changes_nothing() -> None:
    committed = reservation(ReservationState.RESERVED).settle(ReservationState.COMMITTED, NOW + timedelta(1))
    assert committed.state is ReservationState.COMMITTED
    assert committed.settle(ReservationState.COMMITTED, NOW + timedelta(2)) is committed


@pytest.mark.parametrize(
    ("state", "target", "reason"),
    [
        (ReservationState.RELEASED, ReservationState.COMMITTED, "RESERVATION_RELEASED"),
        (ReservationState.COMMITTED, ReservationState.RELEASED, "RESERVATION_COMMITTED"),
    ],
)
def test_settling_the_other_way_is_refused(
    state: ReservationState, target: ReservationState, reason: str
) -> None:
    with pytest.raises(errors.FailedPrecondition) as raised:
        reservation(state).settle(target, NOW)
    assert raised.value.reason == reason
