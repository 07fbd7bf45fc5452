"""The Redis client helper: one pooled asyncio client per service.

Redis holds only what may be lost (live events, rate-limit buckets, caches), so callers treat it as a
cache: a missing key is normal, and a Redis outage degrades features without losing data.
"""

from __future__ import annotations

import functools

from redis.asyncio import Redis

from servicekit.server import Dependency


def create_redis(url: str, *, max_connections: int = 50) -> Redis:
    """A client from a `redis://` or `unix://` URL with health checks and bounded timeouts."""
    return Redis.from_url(
        url,
        max_connections=max_connections,
        health_check_interval=30,
        socket_connect_timeout=3,
        socket_timeout=10,
        decode_responses=False,
    )


async def ping(client: Redis) -> None:
    """Raises unless Redis answers PING."""
    await client.ping()


def dependency(client: Redis) -> Dependency:
    """The readiness check of a service that needs Redis."""
    return Dependency("redis", functools.partial(ping, client))
