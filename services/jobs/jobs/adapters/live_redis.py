"""Live job updates over Redis pub/sub: every snapshot and preview, fanned out to every replica.

Redis is allowed to lose these (a flush, a restart): watchers re-read PostgreSQL whenever the channel is
quiet, and dispatchers poll for queued jobs, so nothing but latency depends on it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobs.adapters import codec
from jobs.domain.jobs import Job, JobState
from jobs.service.ports import Update
from servicekit.logging import get_logger

log = get_logger("jobs.live")
QUEUED_CHANNEL = "jobs:queued"
POLL_SECONDS = 1.0


def channel(job_id: str) -> str:
    """The pub/sub channel of one job."""
    return f"jobs:{job_id}"


class RedisLive:
    """Notifier backed by Redis pub/sub."""

    def __init__(self, client: Redis) -> None:
        self.client = client

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
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel(job_id))
        except RedisError as exc:
            log.warning("live.subscribe_failed", error=repr(exc)[:200])
        try:
            yield self._updates(pubsub)
        finally:
            with contextlib.suppress(RedisError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _updates(self, pubsub: object) -> AsyncIterator[Update | None]:
        while True:
            try:
                message = await pubsub.get_message(timeout=POLL_SECONDS)  # type: ignore[attr-defined]
            except (RedisError, RuntimeError) as exc:
                log.warning("live.receive_failed", error=repr(exc)[:200])
                await asyncio.sleep(POLL_SECONDS)
                message = None
            yield _parse(message["data"]) if message else None

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


def _parse(data: bytes | str) -> Update | None:
    body = json.loads(data)
    if "job" in body:
        return Update(int(body["sequence"]), job=codec.from_json(body["job"]))
    if "preview" in body:
        preview = (base64.b64decode(body["preview"]), str(body["mime_type"]), str(body["node_id"]))
        return Update(int(body["sequence"]), preview=preview)
    return None
