"""Resolves an API key or a session token to a principal: from the cache, else from identity.

Results are cached for the TTL identity allows, capped by a setting, and shortened to a fallback of about a
second whenever the revocation feed is down (a revocation could then go unheard). Failures are cached only for
a short negative TTL, and each one charges the client IP's failed-authentication bucket; an IP whose bucket is
empty is refused with 429 before identity is asked again, which blunts guessing.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import grpc

from comfyapi.identity.v1 import identity_service_pb2 as identity_pb
from comfyapi.identity.v1 import identity_service_pb2_grpc as identity_grpc
from gateway.auth import principals
from gateway.auth.cache import TtlCache
from gateway.ratelimit import Bucket, Limit, RateLimiter
from gateway.settings import GatewaySettings
from servicekit import context, errors, status
from servicekit.context import Principal
from servicekit.logging import get_logger

log = get_logger("gateway.auth")
MAX_CREDENTIAL_LENGTH = 512
# The kinds of credential, as the prefixes of their cache keys.
API_KEY = "k:"
SESSION = "s:"


@dataclass(frozen=True)
class Authenticated:
    """A resolved credential: the principal, and for a session the anti-CSRF token bound to it."""

    principal: Principal
    csrf_token: str = ""
    tags: frozenset[str] = frozenset()

    @cached_property
    def bucket_key(self) -> str:
        """The credential's rate-limit bucket, such as `api_key:apiKeys/k1` (kept with the cached result)."""
        return f"{self.principal.kind}:{self.principal.credential_id}"


Outcome = Authenticated | errors.DomainError


class Authenticator:
    """Authenticates API keys and sessions for the edge."""

    def __init__(
        self,
        identity: identity_grpc.IdentityServiceStub,
        limiter: RateLimiter,
        settings: GatewaySettings,
        feed_healthy: Callable[[], bool],
    ) -> None:
        self.cache: TtlCache[Outcome] = TtlCache(settings.auth_cache_size)
        self._identity = identity
        self._limiter = limiter
        self._settings = settings
        self._feed_healthy = feed_healthy
        self._failure_limit = Limit.parse(settings.rate_limit_auth_failures)
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}
        self._revocations_seen = 0

    def ttl(self, offered_seconds: float) -> float:
        """How long a result may be cached: identity's offer, capped by settings and by the feed's health."""
        cap = self._settings.auth_cache_max_ttl_seconds
        if not self._feed_healthy():
            cap = min(cap, self._settings.auth_cache_fallback_ttl_seconds)
        return max(0.0, min(offered_seconds, cap))

    def known(self, kind: str, credential: str) -> Authenticated | None:
        """A cached, valid result for an API key (`kind` API_KEY) or a session token (SESSION), if any.

        The cheap path of `api_key` and `session`, which must be asked when this answers None.
        """
        cached = self.cache.get(_digest(kind, credential))
        return cached if isinstance(cached, Authenticated) else None

    async def api_key(self, key: str, client_ip: str) -> Authenticated:
        """The principal behind a bearer API key; raises Unauthenticated or ResourceExhausted."""
        digest = _digest(API_KEY, key)
        cached = self.cache.get(digest)
        if isinstance(cached, Authenticated):
            return cached

        async def fetch() -> Outcome:
            seen = self._revocations_seen
            reply = await self._call(
                self._identity.AuthenticateApiKey, identity_pb.AuthenticateApiKeyRequest(key=key)
            )
            principal = principals.from_proto(reply.principal)
            prefix = key.rsplit("_", 1)[0]
            found = Authenticated(principal, tags=principals.tags_of(principal, prefix))
            return self._remember(digest, found, reply.cache_ttl.ToTimedelta().total_seconds(), seen)

        return await self._resolve(digest, key, client_ip, cached, fetch)

    async def session(self, token: str, client_ip: str) -> Authenticated:
        """The principal behind a session cookie; raises Unauthenticated or ResourceExhausted."""
        digest = _digest(SESSION, token)
        cached = self.cache.get(digest)
        if isinstance(cached, Authenticated):
            return cached

        async def fetch() -> Outcome:
            seen = self._revocations_seen
            reply = await self._call(
                self._identity.AuthenticateSession,
                identity_pb.AuthenticateSessionRequest(session_token=token),
            )
            principal = principals.from_proto(reply.principal)
            found = Authenticated(principal, reply.csrf_token, principals.tags_of(principal))
            return self._remember(digest, found, reply.cache_ttl.ToTimedelta().total_seconds(), seen)

        return await self._resolve(digest, token, client_ip, cached, fetch)

    def forget(self, tag: str) -> int:
        """Drops cached results a revocation concerns."""
        self._revocations_seen += 1
        return self.cache.invalidate(tag)

    def forget_all(self) -> None:
        """Drops every cached result, as when revocations may have been missed."""
        self._revocations_seen += 1
        self.cache.clear()

    async def _resolve(
        self,
        digest: str,
        credential: str,
        client_ip: str,
        cached: Outcome | None,
        fetch: Callable[[], Awaitable[Outcome]],
    ) -> Authenticated:
        """Answers a credential the cache does not hold as valid: a cached refusal, else identity's word."""
        await self._refuse_if_guessing(client_ip)
        outcome = cached or await self._single_flight(digest, credential, fetch)
        if isinstance(outcome, Authenticated):
            return outcome
        await self._limiter.charge([self._failure_bucket(client_ip)])
        log.info("auth.refused", reason=outcome.reason, client_ip=client_ip)
        raise outcome

    async def _single_flight(
        self, digest: str, credential: str, fetch: Callable[[], Awaitable[Outcome]]
    ) -> Outcome:
        """Asks identity once for concurrent requests with the same credential."""
        if not credential or len(credential) > MAX_CREDENTIAL_LENGTH or not credential.isascii():
            return errors.Unauthenticated("the credential is malformed", reason="CREDENTIAL_MALFORMED")
        pending = self._inflight.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._outcome(digest, fetch))
            self._inflight[digest] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(digest, None))
        return await asyncio.shield(pending)

    async def _outcome(self, digest: str, fetch: Callable[[], Awaitable[Outcome]]) -> Outcome:
        try:
            return await fetch()
        except errors.Unauthenticated as refused:
            self.cache.put(digest, refused, self._settings.auth_negative_ttl_seconds)
            return refused

    async def _call(self, method: Any, request: Any) -> Any:
        # Authentication RPCs are internal to the platform: the gateway calls them as itself.
        with context.bound(context.request_id(), principals.GATEWAY):
            try:
                return await method(request, timeout=self._settings.backend_timeout_seconds)
            except grpc.aio.AioRpcError as exc:
                raise status.from_rpc_error(exc) from None

    def _remember(self, digest: str, found: Authenticated, offered_ttl: float, seen: int) -> Authenticated:
        # A revocation heard while identity was answering may concern this very credential: use the answer
        # once, but do not keep it.
        if seen == self._revocations_seen:
            self.cache.put(digest, found, self.ttl(offered_ttl), found.tags)
        return found

    async def _refuse_if_guessing(self, client_ip: str) -> None:
        verdict = await self._limiter.peek([self._failure_bucket(client_ip)])
        if verdict is not None and not verdict.allowed:
            raise errors.ResourceExhausted(
                "too many failed authentication attempts from this address; try again later",
                reason="AUTH_ATTEMPTS_EXCEEDED",
                retry_after=verdict.retry_after_seconds,
            )

    def _failure_bucket(self, client_ip: str) -> Bucket:
        return Bucket(f"authfail:{client_ip}", self._failure_limit)


def _digest(kind: str, credential: str) -> str:
    # The cache is keyed by a digest so that it never holds a credential itself.
    return hashlib.sha256((kind + credential).encode()).hexdigest()
