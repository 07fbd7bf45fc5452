"""Side effects that must follow a job's state change, written to the outbox in the same transaction.

Each has a natural key (topic + key is unique in the outbox), so a state change applied twice, or a relay
that crashes after sending, never charges or notifies twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jobs.domain.jobs import Job, JobState

USAGE_COMMIT = "usage.commit"
USAGE_RELEASE = "usage.release"
WEBHOOK = "webhook"

TERMINAL_EVENTS = {
    JobState.SUCCEEDED: "job.succeeded",
    JobState.FAILED: "job.failed",
    JobState.CANCELLED: "job.cancelled",
    JobState.EXPIRED: "job.expired",
}
PROGRESS_EVENT = "job.progress"
PROGRESS_INTERVAL = timedelta(seconds=5)
SNAPSHOT = "snapshot"  # the payload entry holding a Job, stored in the outbox with the job codec
EVENT_TYPES = frozenset({*TERMINAL_EVENTS.values(), PROGRESS_EVENT})


@dataclass(frozen=True)
class OutboxMessage:
    """One side effect to perform after the transaction commits."""

    topic: str
    key: str
    payload: dict[str, Any]


def wants(job: Job, event: str) -> bool:
    """Whether the job's webhook subscribed to `event` (no filter means the four terminal events)."""
    if job.webhook is None:
        return False
    return event in job.webhook.events if job.webhook.events else event in TERMINAL_EVENTS.values()


def on_finish(job: Job) -> list[OutboxMessage]:
    """What a terminal job owes: its usage settled once, and its terminal webhook if subscribed."""
    usage = USAGE_COMMIT if job.state is JobState.SUCCEEDED else USAGE_RELEASE
    messages = [OutboxMessage(usage, job.id, {"owner": job.owner, "job": job.name})]
    event = TERMINAL_EVENTS[job.state]
    if wants(job, event):
        messages.append(OutboxMessage(WEBHOOK, f"{job.id}:{event}", {"job_id": job.id, "event": event}))
    return messages


def on_abandon(job: Job) -> list[OutboxMessage]:
    """What an admission left half done owes: the units it may have reserved, given back."""
    return [OutboxMessage(USAGE_RELEASE, job.id, {"owner": job.owner, "job": job.name})]


def on_progress(job: Job) -> OutboxMessage:
    """A `job.progress` event with the job as it is now (rendered later, when the job has moved on)."""
    return OutboxMessage(
        WEBHOOK,
        f"{job.id}:{PROGRESS_EVENT}:{job.sequence}",
        {"job_id": job.id, "event": PROGRESS_EVENT, SNAPSHOT: job},
    )
