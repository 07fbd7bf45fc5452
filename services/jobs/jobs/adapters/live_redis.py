"""Live job updates over Redis pub/sub: every snapshot and preview, fanned out to every replica.

Redis is allowed to lose these (a flush, a restart): watchers re-read PostgreSQL whenever the channel is
quiet, and dispatchers poll for queued jobs, so nothing but latency depends on it.

All watchers of a replica share one subscriber connection: it subscribes to a job's channel while anyone
watches the job, and a reader task hands each message, parsed once, to every watcher's inbox. A watcher too
slow to keep up loses messages from a full inbox, which costs it at most a poll interval, never a state.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from jobs.adapters import codec
from jobs.domain.jobs import Job, JobState
from jobs.service.ports import Update
from servicekit.logging import get_logger

log = get_logger("jobs.live")
QUEUED_CHANNEL = "jobs:queued"
POLL_SECONDS = 1.0
INBOX_SIZE = 64


def channel(job_id: str) -> str:
    """The pub/sub channel of one job."""
    return f"jobs:{job_id}"


class RedisLive:
    """Notifier backed by Redis pub/sub."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.inboxes: dict[bytes, set[asyncio.Queue[Update]]] = {}
        self.pubsub: PubSub | None = None
        self.reader: asyncio.Task[None] | None = None

    async def _send(self, name: str, message: dict[str, object]) -> None:
        try:
            await self.client.publish(name, json.dumps(message, separators=(",", ":")))
        except RedisError as exc:
            log.warning("live.publish_failed", error=repr(exc)[:200])

    async def publish(self, job: Job) -> None:
        await self._send(channel(job.id), {"sequence": job.sequence, "job": codec.to_json(job)})
        if job.state is JobState.QUEUED:
            await self.announce_queued()

    async def announce_queued(self) -> None:
        await self._send(QUEUED_CHANNEL, {})

    async def publish_preview(
        self, job_id: str, sequence: int, image: bytes, mime_type: str, node_id: str
    ) -> None:
        await self._send(
            channel(job_id),
            {
                "sequence": sequence,
                "preview": base64.b64encode(image).decode(),
                "mime_type": mime_type,
                "node_id": node_id,
            },
        )

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[AsyncIterator[Update | None]]:
        name = channel(job_id).encode()
        inbox: asyncio.Queue[Update] = asyncio.Queue(INBOX_SIZE)
        watchers = self.inboxes.setdefault(name, set())
        watchers.add(inbox)
        try:
            if len(watchers) == 1:
                await self._command("subscribe", name)
            yield _updates(inbox)
        finally:
            watchers.discard(inbox)
            if not watchers:
                del self.inboxes[name]
                await self._command("unsubscribe", name)

    async def _command(self, verb: str, name: bytes) -> None:
        if self.pubsub is None:
            self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await getattr(self.pubsub, verb)(name)
        except RedisError as exc:
            log.warning(f"live.{verb}_failed", error=repr(exc)[:200])
            return
        if self.reader is None:  # started once the connection exists
            self.reader = asyncio.create_task(self._read(self.pubsub))

    async def _read(self, pubsub: PubSub) -> None:
        """Hands every message on the shared connection to the inboxes of its channel's watchers."""
        while True:
            try:
                message = await pubsub.get_message(timeout=POLL_SECONDS)
            except (RedisError, RuntimeError) as exc:  # RuntimeError: nothing subscribed yet
                log.warning("live.receive_failed", error=repr(exc)[:200])
                await asyncio.sleep(POLL_SECONDS)
                continue
            watchers = self.inboxes.get(message["channel"], set()) if message else set()
            update = _parse(message["data"]) if watchers else None
            if update is None:
                continue
            for inbox in watchers:
                with contextlib.suppress(asyncio.QueueFull):
                    inbox.put_nowait(update)

    async def aclose(self) -> None:
        """Stops the shared subscriber."""
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        if self.pubsub is not None:
            with contextlib.suppress(RedisError):
                await self.pubsub.aclose()  # type: ignore[no-untyped-call]

    async def queued_signals(self) -> AsyncIterator[None]:
        while True:
            try:
                async with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(QUEUED_CHANNEL)
                    while True:
                        if await pubsub.get_message(timeout=POLL_SECONDS):
                            yield None
            except RedisError as exc:
                log.warning("live.queued_signals_failed", error=repr(exc)[:200])
                await asyncio.sleep(POLL_SECONDS)


async def _updates(inbox: asyncio.Queue[Update]) -> AsyncIterator[Update | None]:
    """A watcher's updates, and None whenever none came for a poll interval."""
    while True:
        update: Update | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL_SECONDS):
                update = await inbox.get()
        yield update


def _parse(data: bytes | str) -> Update | None:
    body = json.loads(data)
    if "job" in body:
        return Update(int(body["sequence"]), job=codec.from_json(body["job"]))
    if "preview" in body:
        preview = (base64.b64decode(body["preview"]), str(body["mime_type"]), str(body["node_id"]))
        return Update(int(body["sequence"]), preview=preview)
    return None
