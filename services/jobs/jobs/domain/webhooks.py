"""Webhook deliveries: one event addressed to one job's URL, attempted until it succeeds or its window ends.

A delivery is created once per event (keyed by the outbox message that announced it), holds the event's
rendered body so every attempt and every redelivery sends the same bytes under the same event id, and moves
PENDING -> (RETRYING ->)* SUCCEEDED | FAILED. The retry schedule grows roughly exponentially with jitter and
ends within about 24 hours; a 410 Gone or a forbidden target ends it at once.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

EXCERPT_BYTES = 1024
# Delays after attempts 1..7 (8 attempts, about 23.6 hours in all): the Standard Webhooks schedule, trimmed
# so the last attempt falls inside the 24-hour window.
DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 28800.0, 28800.0)
JITTER = (0.8, 1.0)


class DeliveryState(StrEnum):
    """Where a delivery is."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Whether no attempt is scheduled any more (a redelivery may still send the event again)."""
        return self in (DeliveryState.SUCCEEDED, DeliveryState.FAILED)


@dataclass(frozen=True)
class Delivery:
    """One event addressed to one URL, with the outcome of its latest attempt."""

    id: str
    job_id: str
    owner: str
    event_id: str
    event_type: str
    event_time: datetime
    body: str
    url: str
    state: DeliveryState
    create_time: datetime
    update_time: datetime
    next_attempt_time: datetime | None
    source_key: str | None = None
    redelivery_of: str | None = None
    request_id: str = ""
    attempt: int = 0
    http_status: int = 0
    latency: timedelta | None = None
    response_excerpt: str = ""
    error_message: str = ""
    last_attempt_time: datetime | None = None

    @property
    def name(self) -> str:
        """The resource name, `jobs/{job_id}/webhookDeliveries/{id}`."""
        return delivery_name(self.job_id, self.id)


def delivery_name(job_id: str, delivery_id: str) -> str:
    """The resource name of a delivery."""
    return f"jobs/{job_id}/webhookDeliveries/{delivery_id}"


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a response (status, latency, excerpt), a transport error, or a refusal."""

    http_status: int = 0
    latency: timedelta | None = None
    response_excerpt: str = ""
    error_message: str = ""
    refused: bool = False

    @property
    def succeeded(self) -> bool:
        """Whether the receiver accepted the event."""
        return 200 <= self.http_status < 300


@dataclass(frozen=True)
class AttemptRecord:
    """One logged attempt of a delivery."""

    delivery_id: str
    attempt: int
    time: datetime
    outcome: Outcome


def after_attempt(
    delivery: Delivery,
    outcome: Outcome,
    now: datetime,
    schedule: Sequence[float] = DEFAULT_SCHEDULE,
    rng: random.Random | None = None,
) -> Delivery:
    """The delivery once attempt `delivery.attempt + 1` ended with `outcome`."""
    attempt = delivery.attempt + 1
    state, next_time = DeliveryState.FAILED, None
    if outcome.succeeded:
        state = DeliveryState.SUCCEEDED
    elif not outcome.refused and outcome.http_status != 410 and attempt <= len(schedule):
        factor = (rng or random).uniform(*JITTER)
        state, next_time = DeliveryState.RETRYING, now + timedelta(seconds=schedule[attempt - 1] * factor)
    return replace(
        delivery,
        state=state,
        attempt=attempt,
        http_status=outcome.http_status,
        latency=outcome.latency,
        response_excerpt=outcome.response_excerpt,
        error_message=outcome.error_message,
        last_attempt_time=now,
        next_attempt_time=next_time,
        update_time=now,
    )


def excerpt(body: bytes) -> str:
    """The first 1,024 bytes of a response body as text, with replacement characters."""
    return body[:EXCERPT_BYTES].decode("utf-8", errors="replace")
