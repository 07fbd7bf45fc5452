"""The edge's authentication parts, built once per process: Redis, limiter, authenticator, revocation feed."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from comfyapi.identity.v1 import identity_service_pb2_grpc as identity_grpc
from gateway.auth.authenticator import Authenticated, Authenticator
from gateway.auth.cache import TtlCache
from gateway.auth.revocations import RevocationFeed
from gateway.ratelimit import Limit, RateLimiter, parse_plan_limits
from gateway.settings import GatewaySettings

# Short timeouts: the edge would rather let a request through unlimited than make it wait on a slow Redis.
REDIS_TIMEOUT_SECONDS = 0.5


@dataclass
class Edge:
    """Everything the authentication middleware and the account routes share."""

    settings: GatewaySettings
    redis: Redis | None
    limiter: RateLimiter
    authenticator: Authenticator
    feed: RevocationFeed
    plan_limits: dict[str, Limit]
    ip_limit: Limit
    profiles: TtlCache[dict[str, Any]]
    # Rendered answers of `/api/v1/me` by credential, with the cached result they were rendered for; each
    # expires with the profile it shows and is dropped with the credential or the user.
    rendered: TtlCache[tuple[Authenticated, bytes]]
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def open(cls, settings: GatewaySettings, identity: identity_grpc.IdentityServiceStub) -> Edge:
        """Builds the parts and starts the revocation feed; Redis is connected lazily."""
        redis = _redis(settings.redis_url) if settings.redis_url else None
        limiter = RateLimiter(redis)
        holder: list[RevocationFeed] = []
        authenticator = Authenticator(identity, limiter, settings, lambda: holder[0].healthy)
        profiles: TtlCache[dict[str, Any]] = TtlCache(settings.auth_cache_size)
        rendered: TtlCache[tuple[Authenticated, bytes]] = TtlCache(settings.auth_cache_size)

        def forget(tag: str) -> int:
            return authenticator.forget(tag) + profiles.invalidate(tag) + rendered.invalidate(tag)

        def forget_all() -> None:
            authenticator.forget_all()
            profiles.clear()
            rendered.clear()

        feed = RevocationFeed(redis, forget, forget_all)
        holder.append(feed)
        edge = cls(
            settings=settings,
            redis=redis,
            limiter=limiter,
            authenticator=authenticator,
            feed=feed,
            plan_limits=parse_plan_limits(settings.rate_limits),
            ip_limit=Limit.parse(settings.rate_limit_ip),
            profiles=profiles,
            rendered=rendered,
        )
        edge._tasks.append(asyncio.create_task(feed.run(), name="revocation-feed"))
        return edge

    async def revoked(self, kind: str, name: str, user: str) -> None:
        """Forgets a credential here at once and tells the other replicas."""
        self.authenticator.forget(f"{kind}:{name}")
        self.profiles.invalidate(f"{kind}:{name}")
        self.rendered.invalidate(f"{kind}:{name}")
        await self.feed.publish(kind, name, user)

    async def redis_status(self) -> str:
        """`ok`, `unavailable` or `not configured`, for /ready's report."""
        if self.redis is None:
            return "not configured"
        try:
            await self.redis.ping()
        except (RedisError, OSError):
            return "unavailable"
        return "ok"

    async def close(self) -> None:
        """Stops the feed and closes Redis."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.redis is not None:
            await self.redis.aclose()


def _redis(url: str) -> Redis:
    return Redis.from_url(
        url,
        max_connections=256,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        health_check_interval=30,
        decode_responses=False,
    )
