"""The dispatcher: claims queued jobs, runs each attempt on inference, and records how it ended.

Each running job is leased; the lease is renewed while the attempt runs, and every write is fenced by it,
so a dispatcher that stalls or dies hands its jobs over cleanly: another replica takes the job with the same
attempt and re-attaches to the execution instead of running it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from jobs.domain import effects
from jobs.domain.jobs import (
    Artifact,
    ErrorReason,
    Job,
    JobError,
    JobState,
    RetryPolicy,
    after_failure,
    finish,
    next_sequence,
)
from jobs.service.ports import ExecutionEvent, ExecutionSpec, Executor, JobStore, Notifier
from servicekit import errors
from servicekit.logging import get_logger

log = get_logger("jobs.dispatch")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DispatchSettings:
    """How many attempts one replica runs at once, and how it holds them."""

    worker: str
    concurrency: int = 4
    per_owner_cap: int = 2
    lease_seconds: float = 30.0
    idle_poll_seconds: float = 1.0
    claim_batch: int = 8  # jobs claimed in one transaction when that many slots are free
    progress_persist_seconds: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class Dispatcher:
    """Runs up to `concurrency` attempts at once in this replica."""

    def __init__(
        self,
        store: JobStore,
        executor: Executor,
        notifier: Notifier,
        settings: DispatchSettings,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.executor = executor
        self.notifier = notifier
        self.settings = settings
        self.clock = clock
        self.running: dict[str, asyncio.Task[None]] = {}
        self.owners: dict[str, str] = {}  # job id -> owner, of the running ones
        self.wake = asyncio.Event()
        self.takeover_due = 0.0  # when to look next for jobs whose dispatcher died (time.monotonic)

    async def run(self) -> None:
        """Claims and runs jobs until cancelled; other replicas take over what is left running."""
        listener = asyncio.create_task(self._listen())
        try:
            while True:
                self.wake.clear()  # before claiming: a job queued meanwhile wakes the wait below at once
                if not await self._claim():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.settings.idle_poll_seconds):
                            await self.wake.wait()
        finally:
            listener.cancel()
            for task in self.running.values():
                task.cancel()
            await asyncio.gather(listener, *self.running.values(), return_exceptions=True)
            with contextlib.suppress(Exception):  # at worst the leases simply run out
                await self.store.release_leases(self.settings.worker)

    async def _listen(self) -> None:
        async for _ in self.notifier.queued_signals():
            self.wake.set()

    async def _claim(self) -> bool:
        """Starts as many jobs as there are free slots (up to a batch); True if more may be waiting.

        Jobs left running under an expired lease are looked for once per idle interval, not on every claim.
        """
        free = self.settings.concurrency - len(self.running)
        if free <= 0:
            return False
        limit = min(free, self.settings.claim_batch)
        settings, now = self.settings, self.clock()
        try:
            taken = None
            if time.monotonic() >= self.takeover_due:
                taken = await self.store.take_over(settings.worker, settings.lease_seconds, now)
                # One at a time: with one found, look again at once, for a dead replica may have left several.
                self.takeover_due = 0.0 if taken else time.monotonic() + settings.idle_poll_seconds
            claimed = (
                [taken]
                if taken is not None
                else await self.store.claim_many(
                    settings.worker, settings.lease_seconds, settings.per_owner_cap, now, limit
                )
            )
        except Exception as exc:  # the database is down: try again after the idle pause
            log.warning("dispatch.claim_failed", error=repr(exc)[:200])
            return False
        for job, spec in claimed:
            log.info("job.dispatched", job=job.name, attempt=job.attempt_count)
            task = asyncio.create_task(self._attempt(job, spec), name=job.name)
            self.running[job.id] = task
            self.owners[job.id] = job.owner
            task.add_done_callback(functools.partial(self._finished, job.id))
        return taken is not None or len(claimed) == limit

    def _finished(self, job_id: str, _: object = None) -> None:
        self.running.pop(job_id, None)
        owner = self.owners.pop(job_id)
        # Claim again only if this replica was full or the owner at its cap: a job queued while a slot was
        # free was claimed on its signal, and one waiting on another replica's jobs the idle poll finds.
        if (
            len(self.running) + 1 >= self.settings.concurrency
            or list(self.owners.values()).count(owner) + 1 >= self.settings.per_owner_cap
        ):
            self.wake.set()

    async def _attempt(self, job: Job, spec: ExecutionSpec) -> None:
        await self.notifier.publish(job)
        attempt = Attempt(self, job)
        runner = asyncio.create_task(attempt.consume(spec))
        keeper = asyncio.create_task(attempt.keep_lease(runner))
        try:
            await runner
        except asyncio.CancelledError:
            if not runner.done():
                runner.cancel()
            raise
        except Exception:
            log.exception("dispatch.attempt_crashed", job=job.name)
            await attempt.fail(
                JobError(ErrorReason.INTERNAL, "the dispatcher failed; the job is retried", retryable=True)
            )
        finally:
            keeper.cancel()


class Attempt:
    """One attempt of one job, from claim to its recorded outcome."""

    def __init__(self, dispatcher: Dispatcher, job: Job) -> None:
        self.d = dispatcher
        self.job = job
        self.outputs: list[Artifact] = []
        self.cancel_seen = job.cancel_requested
        # Live progress goes out at once through the notifier; the row follows at most once per interval,
        # so a job shorter than that writes none.
        self.persisted_at = time.monotonic()
        self.progress_sent_at: datetime | None = None

    async def keep_lease(self, runner: asyncio.Task[None]) -> None:
        """Renews the lease; stops the attempt when the lease is lost, interrupts it when a cancel arrives."""
        settings = self.d.settings
        while True:
            await asyncio.sleep(settings.lease_seconds / 3)
            try:
                state = await self.d.store.renew(self.job.id, settings.worker, settings.lease_seconds)
            except Exception as exc:
                log.warning("dispatch.renew_failed", job=self.job.name, error=repr(exc)[:200])
                continue
            if state is None:
                log.warning("job.lease_lost", job=self.job.name)
                runner.cancel()
                return
            if state and not self.cancel_seen:
                self.cancel_seen = True
                with contextlib.suppress(errors.DomainError):
                    await self.d.executor.cancel(self.job.execution_id())

    async def consume(self, spec: ExecutionSpec) -> None:
        try:
            async for event in self.d.executor.execute(self.job, spec):
                if await self.on_event(event):
                    return
        except errors.InvalidArgument as exc:
            await self.fail(JobError(ErrorReason.WORKFLOW_REJECTED, exc.message))
            return
        except errors.DomainError as exc:
            await self.requeue_unstarted(exc)
            return
        await self.fail(
            JobError(
                ErrorReason.BACKEND_LOST, "the execution stream ended without an outcome", retryable=True
            )
        )

    async def on_event(self, event: ExecutionEvent) -> bool:
        """Applies one event; True once the attempt's outcome is recorded."""
        now = self.d.clock()
        if event.kind == "progress" and event.progress is not None:
            self.job = replace(
                self.job,
                progress=event.progress,
                update_time=now,
                sequence=next_sequence(self.job.sequence, now),
            )
            await self.d.notifier.publish(self.job)
            await self._persist_progress()
        elif event.kind == "preview" and event.preview is not None:
            image, mime_type, node_id = event.preview
            await self.d.notifier.publish_preview(
                self.job.id, next_sequence(self.job.sequence, now), image, mime_type, node_id
            )
        elif event.kind == "output":
            self.outputs.extend(event.artifacts)
        elif event.kind == "succeeded":
            outputs = tuple(event.artifacts) or tuple(self.outputs)
            await self.record(finish(self.job, JobState.SUCCEEDED, now, outputs=outputs))
            return True
        elif event.kind == "failed" and event.error is not None:
            await self.fail(event.error)
            return True
        elif event.kind == "cancelled":
            await self.on_cancelled(event, now)
            return True
        return False

    async def on_cancelled(self, event: ExecutionEvent, now: datetime) -> None:
        if event.deadline_exceeded:
            error = JobError(ErrorReason.DEADLINE_EXCEEDED, "the job did not finish before its deadline")
            await self.record(
                finish(self.job, JobState.EXPIRED, now, error=error, outputs=tuple(self.outputs))
            )
        elif self.cancel_seen or await self._cancel_requested():
            await self.record(finish(self.job, JobState.CANCELLED, now, outputs=tuple(self.outputs)))
        else:
            await self.fail(
                JobError(ErrorReason.BACKEND_LOST, "the backend interrupted the job", retryable=True)
            )

    async def _cancel_requested(self) -> bool:
        current = await self.d.store.get(None, self.job.id)
        return current is not None and current.cancel_requested

    async def _persist_progress(self) -> None:
        event = self._progress_event()
        if event is None and time.monotonic() - self.persisted_at < self.d.settings.progress_persist_seconds:
            return
        self.persisted_at = time.monotonic()
        messages = [event] if event is not None else []
        await self.d.store.save(self.job, JobState.RUNNING, messages, worker=self.d.settings.worker)

    def _progress_event(self) -> effects.OutboxMessage | None:
        """A `job.progress` webhook, if subscribed and none went out in the last 5 seconds of this attempt."""
        now = self.d.clock()
        if not effects.wants(self.job, effects.PROGRESS_EVENT):
            return None
        if self.progress_sent_at is not None and now - self.progress_sent_at < effects.PROGRESS_INTERVAL:
            return None
        self.progress_sent_at = now
        return effects.on_progress(self.job)

    async def fail(self, error: JobError) -> None:
        """Records a failed attempt: queued again with backoff if it may be retried, else FAILED."""
        after, retry_at = after_failure(self.job, error, self.d.settings.retry, self.d.clock())
        await self.record(after, retry_at)

    async def requeue_unstarted(self, exc: errors.DomainError) -> None:
        """Inference refused the attempt before accepting it (no backend up): wait, keeping the attempt."""
        now = self.d.clock()
        delay = (
            exc.retry_after if exc.retry_after is not None else self.d.settings.retry.delay(1).total_seconds()
        )
        job = replace(
            self.job,
            state=JobState.QUEUED,
            attempt_count=self.job.attempt_count - 1,
            progress=None,
            update_time=now,
            sequence=next_sequence(self.job.sequence, now),
        )
        log.warning("job.requeued", job=job.name, reason=exc.reason, delay_seconds=delay)
        await self.record(job, now + timedelta(seconds=delay))

    async def record(self, job: Job, retry_at: datetime | None = None) -> None:
        messages = effects.on_finish(job) if job.state.terminal else []
        saved = await self.d.store.save(
            job, JobState.RUNNING, messages, worker=self.d.settings.worker, next_attempt_time=retry_at
        )
        if not saved:
            log.warning("job.outcome_dropped", job=job.name, state=job.state.value, why="lease lost")
            return
        self.job = job
        log.info(
            f"job.{job.state.value}",
            job=job.name,
            attempt=job.attempt_count,
            **({"reason": job.error.reason.value} if job.error else {}),
        )
        await self.d.notifier.publish(job)
