"""The Job: one run of a preset or workflow, moving from QUEUED through RUNNING to exactly one terminal state.

The state machine lives here as plain functions of a job and an event; the repository applies their results
with a fence (the job's state and lease), so a decision made on a stale copy never lands.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum

from servicekit import errors


class JobState(StrEnum):
    """Where a job is; ADMITTING is internal (usage not yet reserved) and never shown to clients."""

    ADMITTING = "admitting"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        """Whether the state never changes again."""
        return self in TERMINAL


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED})
VISIBLE = frozenset(JobState) - {JobState.ADMITTING}


class Priority(IntEnum):
    """Dispatch priority; higher first, first in first out within one priority and owner."""

    LOW = 1
    NORMAL = 2
    HIGH = 3


class ErrorReason(StrEnum):
    """Why a job failed, in terms a developer can act on."""

    NODE_FAILED = "node_failed"
    WORKFLOW_REJECTED = "workflow_rejected"
    INPUT_UNAVAILABLE = "input_unavailable"
    OUTPUT_STORAGE_FAILED = "output_storage_failed"
    BACKEND_LOST = "backend_lost"
    OUT_OF_MEMORY = "out_of_memory"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"


@dataclass(frozen=True)
class JobError:
    """A failure with the node it happened in, when there is one."""

    reason: ErrorReason
    message: str
    node_id: str = ""
    node_type: str = ""
    exception_type: str = ""
    retryable: bool = False


@dataclass(frozen=True)
class Progress:
    """The live progress of a running attempt."""

    fraction: float = 0.0
    node_id: str = ""
    node_type: str = ""
    node_title: str = ""
    step: int = 0
    step_max: int = 0


@dataclass(frozen=True)
class Artifact:
    """One stored output image."""

    storage_key: str
    uri: str
    content_type: str
    size_bytes: int
    sha256: str
    width: int
    height: int
    node_id: str
    filename: str


@dataclass(frozen=True)
class Input:
    """One input image: an upload (by storage key) bound to a preset parameter or a workflow LoadImage."""

    name: str
    storage_key: str
    node_id: str = ""
    url: str = ""
    content_type: str = ""
    size_bytes: int = 0


@dataclass(frozen=True)
class Webhook:
    """Where a job's events are posted, and which ones."""

    url: str
    events: tuple[str, ...]


@dataclass(frozen=True)
class Source:
    """What a job runs: a preset invocation, or a raw workflow summarized."""

    preset: str = ""
    preset_version: int = 0
    parameters: dict[str, str | int | float | bool] = field(default_factory=dict)
    workflow_sha256: str = ""
    node_count: int = 0
    output_node_ids: tuple[str, ...] = ()
    node_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    """The job resource; `sequence` orders its snapshots for watchers and resumable streams."""

    id: str
    owner: str
    state: JobState
    priority: Priority
    source: Source
    inputs: tuple[Input, ...]
    labels: dict[str, str]
    webhook: Webhook | None
    deadline: datetime | None
    request_id: str
    create_time: datetime
    update_time: datetime
    sequence: int
    start_time: datetime | None = None
    end_time: datetime | None = None
    attempt_count: int = 0
    queue_position: int = 0
    progress: Progress | None = None
    error: JobError | None = None
    outputs: tuple[Artifact, ...] = ()
    cancel_requested: bool = False

    @property
    def name(self) -> str:
        """The resource name, `jobs/{id}`."""
        return f"jobs/{self.id}"

    def execution_id(self, attempt: int | None = None) -> str:
        """The idempotency id of one attempt at the inference service."""
        return f"{self.name}/attempts/{attempt if attempt is not None else self.attempt_count}"


def next_sequence(previous: int, now: datetime) -> int:
    """A sequence above `previous`: the clock in microseconds, so it keeps rising across restarts."""
    return max(previous + 1, int(now.timestamp() * 1_000_000))


def cancel(job: Job, now: datetime) -> Job:
    """The job after a cancel request: queued ones end at once, running ones wait for the backend."""
    if job.state is JobState.CANCELLED:
        return job
    if job.state.terminal:
        raise errors.FailedPrecondition(
            f"{job.name} already finished as {job.state.value}",
            reason="JOB_ALREADY_FINISHED",
            metadata={"job": job.name, "state": job.state.value},
        )
    if job.state is JobState.RUNNING:
        return replace(job, cancel_requested=True, update_time=now, sequence=next_sequence(job.sequence, now))
    return finish(job, JobState.CANCELLED, now)


def finish(
    job: Job,
    state: JobState,
    now: datetime,
    *,
    error: JobError | None = None,
    outputs: tuple[Artifact, ...] | None = None,
) -> Job:
    """The job in terminal `state`."""
    return replace(
        job,
        state=state,
        end_time=now,
        update_time=now,
        sequence=next_sequence(job.sequence, now),
        progress=None,
        error=error,
        outputs=job.outputs if outputs is None else outputs,
        queue_position=0,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a job is tried again after a transient failure."""

    max_attempts: int = 3
    base_delay: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(minutes=2)

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """Exponential backoff with jitter (half to all of the doubled delay) before attempt `attempt + 1`."""
        ceiling = min(self.max_delay, self.base_delay * (1 << max(0, attempt - 1)))
        factor = rng.uniform(0.5, 1.0) if rng is not None else random.uniform(0.5, 1.0)
        return ceiling * factor


def after_failure(
    job: Job, error: JobError, policy: RetryPolicy, now: datetime
) -> tuple[Job, datetime | None]:
    """The job after a failed attempt, and when to try again (None when it is final)."""
    if error.retryable and job.attempt_count < policy.max_attempts and not job.cancel_requested:
        retry_at = now + policy.delay(job.attempt_count)
        if job.deadline is None or retry_at < job.deadline:
            queued = replace(
                job,
                state=JobState.QUEUED,
                progress=None,
                update_time=now,
                sequence=next_sequence(job.sequence, now),
            )
            return queued, retry_at
    return finish(job, JobState.FAILED, now, error=error), None
