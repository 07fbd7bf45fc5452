"""The ports of the jobs use cases: what they need from storage, billing, inference and live fan-out.

Adapters implement them against PostgreSQL, gRPC and Redis; the unit tests' in-memory twins implement them
too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from jobs.domain.effects import OutboxMessage
from jobs.domain.jobs import Artifact, Job, JobError, JobState, Progress
from servicekit import errors


@dataclass(frozen=True)
class ExecutionSpec:
    """What inference runs for a job: the bound workflow and the (file name, storage key) of each input.

    `new_execution` is true when the attempt was never sent to inference before (a claim past the highest
    attempt submitted, not a takeover or a retry of an unaccepted submission), so no backend can hold it.
    """

    workflow_json: str
    files: tuple[tuple[str, str], ...]
    new_execution: bool = False


@dataclass(frozen=True)
class JobFilter:
    """ListJobs filters; `labels` holds (key, operator, value) terms with operator =, != or exists."""

    states: tuple[JobState, ...] = ()
    labels: tuple[tuple[str, str, str], ...] = ()
    preset: str = ""
    created_from: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class PageCursor:
    """Where the next page of a listing starts (exclusive), newest first."""

    create_time: datetime
    job_id: str


class JobStore(Protocol):
    """Durable jobs; every write is fenced by the state it expects (and the lease, for dispatchers)."""

    async def find_by_request(self, owner: str, request_id: str) -> tuple[Job, str] | None: ...

    async def insert(self, rows: Sequence[tuple[Job, str, ExecutionSpec]]) -> set[str]:
        """Writes new ADMITTING jobs with their request hash and workflow; the ids of those written (a job
        whose owner's request id, or whose id, is already taken is not)."""
        ...

    async def enqueue(self, queued: Sequence[Job]) -> dict[str, Job]:
        """Moves ADMITTING jobs to QUEUED as each `queued` job says; by id, each one moved, with its queue
        position (a job missing was no longer admitting: its admission was abandoned meanwhile)."""
        ...

    async def discard(self, job_id: str) -> None:
        """Removes an ADMITTING job that holds no reservation."""
        ...

    async def abandon(self, job_id: str, messages: Sequence[OutboxMessage]) -> bool:
        """Removes an ADMITTING job and writes `messages` in the same transaction; False if it is no longer
        admitting (a retry of its request queued it meanwhile)."""
        ...

    async def save(
        self,
        job: Job,
        expected: JobState,
        messages: Sequence[OutboxMessage] = (),
        worker: str | None = None,
        next_attempt_time: datetime | None = None,
    ) -> bool: ...

    async def get(self, owner: str | None, job_id: str) -> Job | None: ...

    async def page(self, owner: str, where: JobFilter, size: int, cursor: PageCursor | None) -> list[Job]: ...

    async def overdue(self, now: datetime, limit: int) -> list[Job]: ...

    async def stale_admissions(self, older_than: datetime, limit: int) -> list[Job]: ...

    async def release_leases(self, worker: str) -> None:
        """Ends every lease `worker` holds, so another replica re-attaches to its executions now."""
        ...

    async def take_over(
        self, worker: str, lease_seconds: float, now: datetime
    ) -> tuple[Job, ExecutionSpec] | None:
        """A running job whose lease ran out (its dispatcher died), now leased to `worker`, same attempt."""
        ...

    async def claim_many(
        self, worker: str, lease_seconds: float, per_owner_cap: int, now: datetime, limit: int
    ) -> list[tuple[Job, ExecutionSpec]]:
        """Up to `limit` queued jobs to run, best first, in one transaction."""
        ...

    async def renew(self, job_id: str, worker: str, lease_seconds: float) -> bool | None:
        """Extends the lease; None when it was lost, else whether a cancel was requested meanwhile."""
        ...


@dataclass(frozen=True)
class OutboxItem:
    """A claimed outbox message."""

    id: int
    topic: str
    key: str
    payload: dict[str, object]
    attempts: int


class Outbox(Protocol):
    """Side effects waiting to be performed, each claimed by one relay at a time."""

    async def claim(self, topics: Sequence[str], limit: int, hold_seconds: float) -> list[OutboxItem]: ...

    async def done(self, item_ids: Sequence[int]) -> None: ...

    async def retry(self, item_id: int, error: str, delay_seconds: float) -> None: ...

    async def prune(self, done_before: datetime, limit: int) -> int:
        """Deletes up to `limit` messages performed before `done_before`; returns how many."""
        ...


class Executor(Protocol):
    """Runs one attempt of a job on the inference context and reports its events."""

    def execute(self, job: Job, spec: ExecutionSpec) -> AsyncIterator[ExecutionEvent]: ...

    async def cancel(self, execution_id: str) -> None: ...


class Billing(Protocol):
    """The usage ledger of the billing context, keyed by job."""

    async def reserve(self, jobs: Sequence[tuple[str, str]]) -> list[errors.DomainError | None]:
        """Reserves a unit for each (owner, job name); the refusal of each, None where reserved."""
        ...

    async def commit(self, owner: str, job: str) -> None: ...

    async def release(self, owner: str, job: str) -> None: ...


@dataclass(frozen=True)
class Validation:
    """The verdict on a workflow from the inference context's live node catalog."""

    violations: tuple[tuple[str, str], ...]
    output_node_ids: tuple[str, ...]


class Validator(Protocol):
    """Checks a bound workflow before anything is reserved or queued."""

    async def validate(self, workflow_json: str, filenames: Sequence[str]) -> Validation: ...


@dataclass(frozen=True)
class Update:
    """One message on a job's live channel: a new snapshot, or a preview image."""

    sequence: int
    job: Job | None = None
    preview: tuple[bytes, str, str] | None = None


class Notifier(Protocol):
    """Live fan-out of job snapshots to every replica; may lose messages (watchers re-read the database)."""

    async def publish(self, job: Job) -> None:
        """Sends a new snapshot to the job's watchers (and, for a queued job, wakes the dispatchers)."""
        ...

    async def announce_queued(self) -> None:
        """Wakes the dispatchers of every replica: a job was queued."""
        ...

    def queued_signals(self) -> AsyncIterator[None]:
        """Yields after this or any other replica queued a job (several queued meanwhile make one signal)."""
        ...

    async def publish_preview(
        self, job_id: str, sequence: int, image: bytes, mime_type: str, node_id: str
    ) -> None: ...

    def subscribe(self, job_id: str) -> AbstractAsyncContextManager[AsyncIterator[Update | None]]: ...


@dataclass(frozen=True)
class ExecutionEvent:
    """One event of a job's execution as the dispatcher needs it."""

    kind: str  # started, progress, preview, output, succeeded, failed, cancelled
    progress: Progress | None = None
    artifacts: tuple[Artifact, ...] = ()
    error: JobError | None = None
    preview: tuple[bytes, str, str] | None = None
    deadline_exceeded: bool = False
    extra: dict[str, str] = field(default_factory=dict)
