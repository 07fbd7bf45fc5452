"""Live job updates over Redis pub/sub: every snapshot and preview, fanned out to every replica.

Redis is allowed to lose these (a flush, a restart): watchers re-read PostgreSQL whenever the channel is
quiet, and dispatchers poll for queued jobs, so nothing but latency depends on it.

All watchers of a replica share one subscriber connection: it subscribes to a job's channel while anyone
watches the job, and a reader task hands each message, parsed once, to every watcher's inbox. A watcher too
slow to keep up loses messages from a full inbox, which costs it at most a poll interval, never a state.

What a replica publishes reaches its own watchers and dispatcher at once, without the round trip through
Redis; each message carries its replica's origin tag, so the copy that comes back is dropped unparsed. The
copies for other replicas leave through one sender task, in order, whatever accumulated since its last write
going out in one pipeline, so a publisher never waits on Redis and a busy replica makes fewer writes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections import deque
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
MAX_UNSENT = 10_000  # past this many messages waiting for Redis, new ones are dropped (Redis may lose them)
SEND_BATCH = 256


def channel(job_id: str) -> str:
    """The pub/sub channel of one job."""
    return f"jobs:{job_id}"


class RedisLive:
    """Notifier backed by Redis pub/sub."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.origin = uuid.uuid4().hex[:16].encode() + b" "  # prefixes every message this replica sends
        self.inboxes: dict[bytes, set[asyncio.Queue[Update]]] = {}
        self.pubsub: PubSub | None = None
        self.reader: asyncio.Task[None] | None = None
        self.queued = asyncio.Event()
        self.unsent: deque[tuple[str, bytes]] = deque()
        self.to_send = asyncio.Event()
        self.sender: asyncio.Task[None] | None = None
        self.closing = False
        self.dropped = 0

    def _send(self, name: str, message: dict[str, object]) -> None:
        if len(self.unsent) >= MAX_UNSENT:
            if self.dropped % 1000 == 0:
                log.warning("live.publish_dropped", dropped=self.dropped + 1, why="Redis is not keeping up")
            self.dropped += 1
            return
        self.unsent.append((name, self.origin + json.dumps(message, separators=(",", ":")).encode()))
        self.to_send.set()
        if self.sender is None:
            self.sender = asyncio.create_task(self._send_all(), name="live-sender")

    async def _send_all(self) -> None:
        while True:
            await self.to_send.wait()
            self.to_send.clear()
            while self.unsent:
                batch = [self.unsent.popleft() for _ in range(min(len(self.unsent), SEND_BATCH))]
                try:
                    if len(batch) == 1:
                        await self.client.publish(*batch[0])
                    else:
                        async with self.client.pipeline(transaction=False) as pipe:
                            for name, data in batch:
                                pipe.publish(name, data)
                            await pipe.execute()
                except Exception as exc:  # whatever happened to this batch, the sender goes on
                    log.warning("live.publish_failed", messages=len(batch), error=repr(exc)[:200])
            if self.closing:
                return

    def _deliver(self, name: bytes, update: Update) -> None:
        for inbox in self.inboxes.get(name, ()):
            with contextlib.suppress(asyncio.QueueFull):
                inbox.put_nowait(update)

    async def publish(self, job: Job) -> None:
        name = channel(job.id)
        self._deliver(name.encode(), Update(job.sequence, job=job))
        self._send(name, {"sequence": job.sequence, "job": codec.to_json(job)})
        if job.state is JobState.QUEUED:
            await self.announce_queued()

    async def announce_queued(self) -> None:
        self.queued.set()
        self._send(QUEUED_CHANNEL, {})

    async def publish_preview(
        self, job_id: str, sequence: int, image: bytes, mime_type: str, node_id: str
    ) -> None:
        name = channel(job_id)
        self._deliver(name.encode(), Update(sequence, preview=(image, mime_type, node_id)))
        self._send(
            name,
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
            if not message or message["data"].startswith(self.origin):
                continue  # this replica's own message: its watchers have it already
            if message["channel"] in self.inboxes and (update := _parse(message["data"])) is not None:
                self._deliver(message["channel"], update)

    async def aclose(self) -> None:
        """Sends what is still waiting (for at most a second), then stops the sender and the subscriber."""
        if self.sender is not None:
            self.closing = True
            self.to_send.set()
            await asyncio.wait({self.sender}, timeout=1.0)
        for task in (self.sender, self.reader):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.pubsub is not None:
            with contextlib.suppress(RedisError):
                await self.pubsub.aclose()  # type: ignore[no-untyped-call]

    async def queued_signals(self) -> AsyncIterator[None]:
        """One signal after any number of jobs were queued here or by another replica (one consumer)."""
        listener = asyncio.create_task(self._listen_queued())
        try:
            while True:
                await self.queued.wait()
                self.queued.clear()
                yield None
        finally:
            listener.cancel()

    async def _listen_queued(self) -> None:
        while True:
            try:
                async with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(QUEUED_CHANNEL)
                    while True:
                        message = await pubsub.get_message(timeout=POLL_SECONDS)
                        if message and not message["data"].startswith(self.origin):
                            self.queued.set()
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


def _parse(data: bytes) -> Update | None:
    body = json.loads(data[data.index(b" ") + 1 :])
    if "job" in body:
        return Update(int(body["sequence"]), job=codec.from_json(body["job"]))
    if "preview" in body:
        preview = (base64.b64decode(body["preview"]), str(body["mime_type"]), str(body["node_id"]))
        return Update(int(body["sequence"]), preview=preview)
    return None
