"""Reading and steering jobs: get, list, cancel and watch, always scoped to the owner."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from jobs.domain import effects
from jobs.domain.jobs import Job, JobState, cancel, next_sequence
from jobs.service.ports import JobFilter, JobStore, Notifier, PageCursor
from servicekit import errors
from servicekit.logging import get_logger

log = get_logger("jobs.jobs")
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
MAX_WAIT_SECONDS = 600.0


def _now() -> datetime:
    return datetime.now(UTC)


def not_found(job_id: str) -> errors.NotFound:
    """The answer for a job that does not exist or belongs to someone else."""
    return errors.NotFound(
        f"jobs/{job_id} does not exist", reason="JOB_NOT_FOUND", metadata={"job": f"jobs/{job_id}"}
    )


def parse_label_selector(text: str) -> tuple[tuple[str, str, str], ...]:
    """Terms of a selector such as `env=prod,batch,tier!=free`."""
    terms = []
    for raw in filter(None, (part.strip() for part in text.split(","))):
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            terms.append((key.strip(), "!=", value.strip()))
        elif "=" in raw:
            key, value = raw.split("=", 1)
            terms.append((key.strip(), "=", value.strip()))
        else:
            terms.append((raw, "exists", ""))
    for key, _, _ in terms:
        if not key or any(c in key for c in " =!"):
            raise errors.InvalidArgument(
                f"bad label selector term {key!r}",
                reason="FILTER_INVALID",
                violations=(errors.FieldViolation("label_selector", "key=value, key!=value or key"),),
            )
    return tuple(terms)


def _filter_digest(where: JobFilter) -> str:
    body = json.dumps(asdict(where), sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def encode_token(job: Job, where: JobFilter) -> str:
    """An opaque page token: where the page ended, bound to the filters it was made with."""
    body = {"t": job.create_time.isoformat(), "id": job.id, "f": _filter_digest(where)}
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def decode_token(token: str, where: JobFilter) -> PageCursor:
    """The cursor of a token made by `encode_token` for the same filters."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if body["f"] != _filter_digest(where):
            raise ValueError("filters changed")
        return PageCursor(datetime.fromisoformat(body["t"]), str(body["id"]))
    except (ValueError, KeyError, TypeError):
        raise errors.InvalidArgument(
            "page_token is malformed or was made for other filters",
            reason="PAGE_TOKEN_INVALID",
            violations=(errors.FieldViolation("page_token", "unknown token"),),
        ) from None


@dataclass(frozen=True)
class Snapshot:
    """One message of a watch stream."""

    sequence: int
    job: Job
    preview: tuple[bytes, str, str] | None = None


def check_wait(seconds: float) -> float:
    """`seconds` when it is a wait CreateJob may hold a call for; INVALID_ARGUMENT naming `wait` otherwise."""
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise errors.InvalidArgument(
            f"wait must be between 0 and {MAX_WAIT_SECONDS:.0f} seconds",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation("wait", f"0 to {MAX_WAIT_SECONDS:.0f} seconds"),),
        )
    return seconds


class Jobs:
    """Owner-scoped reads and changes of jobs."""

    def __init__(
        self,
        store: JobStore,
        notifier: Notifier,
        cancel_execution: Callable[[str], object],
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.cancel_execution = cancel_execution
        self.clock = clock

    async def get(self, owner: str, job_id: str) -> Job:
        """One of the owner's jobs."""
        job = await self.store.get(owner, job_id)
        if job is None:
            raise not_found(job_id)
        return job

    async def list(
        self, owner: str, where: JobFilter, page_size: int, page_token: str
    ) -> tuple[list[Job], str]:
        """A page of the owner's jobs, newest first, and the token of the next page."""
        if page_size < 0:
            raise errors.InvalidArgument(
                "page_size must not be negative",
                reason="FIELD_INVALID",
                violations=(errors.FieldViolation("page_size", "must be >= 0"),),
            )
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        cursor = decode_token(page_token, where) if page_token else None
        page = await self.store.page(owner, where, size + 1, cursor)
        more = len(page) > size
        page = page[:size]
        return page, encode_token(page[-1], where) if more else ""

    async def cancel(self, owner: str, job_id: str) -> Job:
        """Cancels a job; retried on a concurrent change, since the decision depends on the state."""
        for _ in range(5):
            job = await self.get(owner, job_id)
            changed = cancel(job, self.clock())
            if changed is job:
                return job
            messages = effects.on_finish(changed) if changed.state.terminal else []
            if await self.store.save(changed, job.state, messages):
                log.info(
                    "job.cancel_requested" if changed.state is JobState.RUNNING else "job.cancelled",
                    job=job.name,
                )
                await self.notifier.publish(changed)
                if changed.state is JobState.RUNNING:
                    await self._interrupt(changed)
                return changed
        raise errors.Aborted(
            "the job changed while it was being cancelled; retry", reason="CONCURRENT_CHANGE"
        )

    async def _interrupt(self, job: Job) -> None:
        # The dispatcher holding the job also interrupts when it sees cancel_requested; this is the fast path.
        try:
            await self.cancel_execution(job.execution_id())  # type: ignore[misc]
        except errors.DomainError as exc:
            log.warning("job.interrupt_deferred", job=job.name, reason=exc.reason)

    async def outcome(self, job: Job, wait_seconds: float) -> Job:
        """The job once it ended, or as it is when `wait_seconds` (see check_wait) run out first."""
        if job.state.terminal or not wait_seconds:
            return job
        ended = self.watch(job.owner, job.id, job.sequence, False, terminal_only=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_seconds), contextlib.aclosing(ended):
                async for snapshot in ended:
                    return snapshot.job
        return await self.get(job.owner, job.id)

    async def watch(
        self, owner: str, job_id: str, after: int, previews: bool, terminal_only: bool = False
    ) -> AsyncGenerator[Snapshot, None]:
        """Snapshots newer than `after`, then one per change, ending after a terminal one (or only that)."""
        async for snapshot in self._changes(owner, job_id, after, previews and not terminal_only):
            if not terminal_only or snapshot.job.state.terminal:
                yield snapshot

    async def _changes(self, owner: str, job_id: str, after: int, previews: bool) -> AsyncIterator[Snapshot]:
        async with self.notifier.subscribe(job_id) as updates:
            job = await self.get(owner, job_id)  # read after subscribing, so no change falls in between
            last = after
            if job.sequence > last:
                last = job.sequence
                yield Snapshot(last, job)
            while not job.state.terminal:
                update = await anext(updates)  # None whenever the channel was quiet for a while
                if update is None or (update.job is None and update.preview is None):
                    fresh = await self.get(owner, job_id)
                    if fresh.sequence > last or fresh.queue_position != job.queue_position:
                        job = fresh
                        last = max(fresh.sequence, last + 1)
                        yield Snapshot(last, job)
                elif update.job is not None and update.sequence > last:
                    job = update.job
                    last = update.sequence
                    yield Snapshot(last, job)
                elif update.preview is not None and previews:
                    last = next_sequence(last, self.clock())
                    yield Snapshot(last, job, update.preview)
