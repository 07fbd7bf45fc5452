"""The revocation feed: Redis pub/sub messages that make every gateway replica forget a credential at once.

Identity publishes on channel `identity.revocations` one JSON object per revocation (see identity's
adapters/events.py): `{"kind": "api_key" | "session" | "user", "name": "<resource name>", "user": ...}`,
plus `"prefix"` (the key's public prefix) for an API key. A gateway also publishes the revocations it relays
itself, in the same shape, so its sibling replicas need not wait for identity's message.

While the feed is down a revocation could go unheard, so the listener reports itself unhealthy (the cache
then keeps results only about a second) and drops the whole cache whenever it (re)connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from servicekit.logging import get_logger

log = get_logger("gateway.revocations")
CHANNEL = "identity.revocations"
KINDS = frozenset({"api_key", "session", "user"})
PING_EVERY_SECONDS = 2.0
RETRY_MIN_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0


def parse(data: bytes | str) -> list[str]:
    """The cache tags a message names (empty for a message this gateway does not understand)."""
    try:
        message = json.loads(data)
        kind = message["kind"]
        values = [message.get(field) for field in ("name", "prefix", "id")]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    if kind not in KINDS:
        return []
    return [f"{kind}:{value}" for value in values if isinstance(value, str) and value]


class RevocationFeed:
    """Listens on the channel until cancelled, reconnecting after Redis errors."""

    def __init__(self, redis: Redis | None, forget: Callable[[str], int], forget_all: Callable[[], None]):
        self._redis = redis
        self._forget = forget
        self._forget_all = forget_all
        self.healthy = False
        self.subscribed = asyncio.Event()

    async def publish(self, kind: str, name: str, user: str) -> None:
        """Tells every replica to forget a credential; a failure is logged, the TTL bounds the damage."""
        if self._redis is None:
            return
        try:
            await self._redis.publish(CHANNEL, json.dumps({"kind": kind, "name": name, "user": user}))
        except (RedisError, OSError) as exc:
            log.warning("revocation.unpublished", kind=kind, error=type(exc).__name__)

    async def run(self) -> None:
        """Subscribes and applies messages forever; meant to run as a task cancelled at shutdown."""
        if self._redis is None:
            log.warning("revocations.disabled", reason="REDIS_URL is not set; cached credentials live ~1 s")
            return
        delay = RETRY_MIN_SECONDS
        while True:
            try:
                await self._listen(self._redis)
            except (RedisError, OSError) as exc:
                if self.healthy:
                    log.warning("revocations.disconnected", error=type(exc).__name__)
                self.healthy = False
                self.subscribed.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
            else:
                delay = RETRY_MIN_SECONDS

    async def _listen(self, redis: Redis) -> None:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            # Whatever was revoked while we were not listening is unknown: start from an empty cache.
            self._forget_all()
            self.healthy = True
            self.subscribed.set()
            log.info("revocations.subscribed", channel=CHANNEL)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=PING_EVERY_SECONDS)
                if message is None:
                    await pubsub.ping()  # a dead connection shows up here rather than never
                    continue
                self._apply(message)
        finally:
            self.healthy = False
            await _close(pubsub)

    def _apply(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        tags = parse(message["data"])
        if not tags:
            log.warning("revocation.ignored", reason="unreadable message")
            return
        dropped = sum(self._forget(tag) for tag in tags)
        log.info("revocation.applied", kind=tags[0].partition(":")[0], dropped=dropped)


async def _close(pubsub: Any) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()
