"""Revocation events on Redis, so every gateway replica drops cached authentications at once.

Channel: `identity.revocations`. Each message is one JSON object:

    {"kind": "api_key", "name": "apiKeys/{id}", "user": "users/{id}", "prefix": "cmfy_XXXXXXXX", "time": T}
    {"kind": "session", "name": "sessions/{id}", "user": "users/{id}", "time": T}
    {"kind": "user", "name": "users/{id}", "user": "users/{id}", "reason": R, "time": T}

`api_key`: drop the cached principal of that key (match on `prefix` or `name`). `session`: drop that
session's cached principal. `user`: drop every cached principal of the user; `reason` (R) is "deleted"
(account deleted) or "plan_changed" (the plan a principal carries changed). `time` (T) is RFC 3339 UTC.
Messages are published after the change is committed; pub/sub delivery is best effort, so gateways still
bound their caches by the `cache_ttl` the authenticate RPCs return. No message carries a secret: a prefix
is the public half of a key.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from servicekit.logging import get_logger

CHANNEL = "identity.revocations"
log = get_logger("identity.events")


class RedisRevocations:
    """Publishes revocation events; a Redis outage is logged, since caches expire on their own."""

    def __init__(self, client: Redis) -> None:
        self.client = client

    async def publish(self, kind: str, name: str, user: str, when: datetime, **extra: str) -> None:
        """Announces that the credential or user `name` must no longer be served from a cache."""
        event: dict[str, Any] = {"kind": kind, "name": name, "user": user, "time": when.isoformat(), **extra}
        try:
            await self.client.publish(CHANNEL, json.dumps(event, separators=(",", ":")))
        except (RedisError, OSError) as exc:
            log.warning("revocation.publish_failed", kind=kind, name=name, error=type(exc).__name__)
