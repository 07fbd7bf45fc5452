"""Conversion between billing's domain values and their protos."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from billing.domain.plans import Plan
from billing.domain.usage import Period, Reservation, ReservationState, Usage
from comfyapi.billing.v1 import billing_service_pb2 as pb
from comfyapi.billing.v1 import plan_pb2, subscription_pb2, usage_pb2

_STATES = {
    ReservationState.RESERVED: usage_pb2.RESERVATION_STATE_RESERVED,
    ReservationState.COMMITTED: usage_pb2.RESERVATION_STATE_COMMITTED,
    ReservationState.RELEASED: usage_pb2.RESERVATION_STATE_RELEASED,
}


def timestamp(value: datetime) -> Timestamp:
    """A protobuf timestamp of an aware datetime."""
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def plan_to_proto(plan: Plan) -> plan_pb2.Plan:
    """A plan as clients see it."""
    return plan_pb2.Plan(
        name=f"plans/{plan.plan_id}",
        plan_id=plan.plan_id,
        display_name=plan.display_name,
        description=plan.description,
        monthly_job_quota=plan.monthly_job_quota,
        price_minor_units=plan.price_minor_units,
        currency_code=plan.currency_code,
        stripe_price_id=plan.stripe_price_id,
        stripe_product_id=plan.stripe_product_id,
        features=plan.features,
        max_concurrent_jobs=plan.max_concurrent_jobs,
        requests_per_minute=plan.requests_per_minute,
        max_watched_folders=plan.max_watched_folders,
        purchasable=plan.purchasable,
    )


def reservation_to_proto(reservation: Reservation) -> usage_pb2.Reservation:
    """A ledger entry; its name is keyed by the job id."""
    return usage_pb2.Reservation(
        name=f"reservations/{reservation.job.removeprefix('jobs/')}",
        owner=reservation.owner,
        job=reservation.job,
        units=reservation.units,
        state=_STATES[reservation.state],
        period_start_time=timestamp(reservation.period_start),
        create_time=timestamp(reservation.create_time),
        update_time=timestamp(reservation.update_time),
    )


def usage_to_proto(usage: Usage) -> usage_pb2.Usage:
    """An owner's usage in the current period."""
    return usage_pb2.Usage(
        owner=usage.owner,
        plan=f"plans/{usage.plan_id}",
        used_units=usage.used,
        reserved_units=usage.reserved,
        quota_units=usage.quota,
        available_units=usage.available,
        period_start_time=timestamp(usage.period.start),
        period_end_time=timestamp(usage.period.end),
    )


def free_subscription(owner: str, plan: Plan, period: Period) -> subscription_pb2.Subscription:
    """The implicit subscription of an owner who never subscribed."""
    return subscription_pb2.Subscription(
        name=f"subscriptions/free-{owner.removeprefix('users/')}",
        owner=owner,
        plan=f"plans/{plan.plan_id}",
        status=subscription_pb2.SUBSCRIPTION_STATUS_FREE,
        current_period_start_time=timestamp(period.start),
        current_period_end_time=timestamp(period.end),
    )


def reserved_to_proto(reservation: Reservation, usage: Usage) -> pb.ReserveUsageResponse:
    """The answer of a reservation that was made or found."""
    return pb.ReserveUsageResponse(reservation=reservation_to_proto(reservation), usage=usage_to_proto(usage))
