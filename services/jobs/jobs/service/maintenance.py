"""Background work every replica shares: expiring overdue jobs, cleaning abandoned admissions, and the
outbox relay that settles usage once each job ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

from jobs.domain import effects
from jobs.domain.jobs import ErrorReason, JobError, JobState, finish
from jobs.service.ports import Billing, JobStore, Notifier, Outbox, OutboxItem
from servicekit import errors
from servicekit.logging import get_logger

log = get_logger("jobs.maintenance")
ABANDONED_AFTER = timedelta(minutes=2)
MAX_RELAY_DELAY_SECONDS = 300.0
RELAY_POLL_SECONDS = 2.0
# Drains start at least this far apart: what commits in between goes out together (a batch under load, at
# once when the replica is quiet).
RELAY_MIN_GAP_SECONDS = 0.05
RELAY_BATCH = 50
# Performed messages are kept this long (for inspection), then deleted a batch a minute at most, so the outbox
# holds about a week of traffic rather than all of it.
OUTBOX_KEEP_DONE = timedelta(days=7)
OUTBOX_PRUNE_INTERVAL_SECONDS = 60.0
OUTBOX_PRUNE_BATCH = 5000

Handler = Callable[[OutboxItem], Awaitable[None]]


def _now() -> datetime:
    return datetime.now(UTC)


class Reaper:
    """Ends queued jobs past their deadline and removes admissions a crashed replica left behind."""

    def __init__(
        self,
        store: JobStore,
        notifier: Notifier,
        clock: Callable[[], datetime] = _now,
        abandoned_after: timedelta = ABANDONED_AFTER,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.abandoned_after = abandoned_after

    async def sweep(self) -> int:
        """One pass; returns how many jobs it changed."""
        now = self.clock()
        changed = 0
        for job in await self.store.overdue(now, limit=100):
            error = JobError(ErrorReason.DEADLINE_EXCEEDED, "the job was still queued at its deadline")
            expired = finish(job, JobState.EXPIRED, now, error=error)
            if await self.store.save(expired, JobState.QUEUED, effects.on_finish(expired)):
                log.info("job.expired", job=job.name)
                await self.notifier.publish(expired)
                changed += 1
        for job in await self.store.stale_admissions(now - self.abandoned_after, limit=100):
            # The row goes first, with the release as an outbox message: a retry of the request that comes
            # at the same moment either queued the job already (then nothing is removed) or finds it gone
            # and is told to start over; it can never queue a job whose units were given back.
            if await self.store.abandon(job.id, effects.on_abandon(job)):
                log.info("job.admission_abandoned", job=job.name)
                changed += 1
        return changed

    async def run(self, interval: float = 1.0) -> None:
        """Sweeps until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("maintenance.sweep_failed", error=repr(exc)[:200])
            await asyncio.sleep(interval)


def usage_handlers(billing: Billing) -> dict[str, Handler]:
    """Outbox handlers that settle a job's reservation with billing."""

    async def commit(item: OutboxItem) -> None:
        await billing.commit(str(item.payload["owner"]), str(item.payload["job"]))

    async def release(item: OutboxItem) -> None:
        with contextlib.suppress(errors.NotFound):  # never reserved: nothing to give back
            await billing.release(str(item.payload["owner"]), str(item.payload["job"]))

    return {effects.USAGE_COMMIT: commit, effects.USAGE_RELEASE: release}


class Relay:
    """Performs outbox messages once their transactions committed, retrying with backoff until done.

    `written` is set whenever this replica commits outbox messages, so they go out at once; the poll finds
    the rest (retries falling due, messages another replica left when it died). Once a minute it also
    deletes a batch of messages performed more than a week ago.
    """

    def __init__(
        self, outbox: Outbox, handlers: Mapping[str, Handler], written: asyncio.Event | None = None
    ) -> None:
        self.outbox = outbox
        self.handlers = dict(handlers)
        self.written = written or asyncio.Event()
        self.prune_due = 0.0  # loop time of the next pruning pass

    async def drain(self, limit: int = RELAY_BATCH) -> int:
        """Performs what is due now; returns how many messages it handled."""
        items = await self.outbox.claim(list(self.handlers), limit, hold_seconds=60)
        done = []
        for item in items:
            try:
                await self.handlers[item.topic](item)
            except Exception as exc:
                delay = min(MAX_RELAY_DELAY_SECONDS, 2.0 ** min(item.attempts, 10)) * random.uniform(0.5, 1.0)
                log.warning(
                    "outbox.retry",
                    topic=item.topic,
                    key=item.key,
                    attempts=item.attempts,
                    error=repr(exc)[:200],
                    delay_seconds=round(delay, 2),
                )
                await self.outbox.retry(item.id, repr(exc), delay)
            else:
                done.append(item.id)
        if done:  # a crash before this only repeats what was done: every handler is idempotent
            await self.outbox.done(done)
        return len(items)

    async def prune(self) -> int:
        """Deletes a batch of messages performed more than OUTBOX_KEEP_DONE ago; returns how many."""
        try:
            pruned = await self.outbox.prune(_now() - OUTBOX_KEEP_DONE, OUTBOX_PRUNE_BATCH)
        except Exception as exc:  # the next pass tries again
            log.warning("outbox.prune_failed", error=repr(exc)[:200])
            return 0
        if pruned:
            log.info("outbox.pruned", messages=pruned)
        return pruned

    async def run(self, interval: float = RELAY_POLL_SECONDS, min_gap: float = RELAY_MIN_GAP_SECONDS) -> None:
        """Drains until cancelled: again at once while batches come back full, else when woken or after
        `interval`, never sooner than `min_gap` after the previous drain began."""
        loop = asyncio.get_running_loop()
        while True:
            self.written.clear()  # before draining: a message committed meanwhile wakes the wait below
            began = loop.time()
            if began >= self.prune_due:
                self.prune_due = began + OUTBOX_PRUNE_INTERVAL_SECONDS
                await self.prune()
            try:
                handled = await self.drain()
            except Exception as exc:
                log.warning("outbox.drain_failed", error=repr(exc)[:200])
                handled = 0
            if handled < RELAY_BATCH:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self.written.wait()
                await asyncio.sleep(max(0.0, began + min_gap - loop.time()))
