"""Token-bucket rate limits kept in Redis, shared by every gateway replica.

One Lua script checks and charges several buckets at once (an API key's and its client IP's), atomically, so
concurrent requests on different replicas can never overdraw a bucket. A bucket of `requests/seconds` holds at
most `requests` tokens and refills continuously at `requests / seconds` tokens a second. Busy buckets are
charged a few tokens per round trip (see LEASE_FRACTION), which keeps Redis off the path of most requests at
high rates.

When Redis is unreachable the limiter fails open: requests pass and a warning is logged (at most every few
seconds). Redis holds only what may be lost, and refusing all traffic because a cache is down would turn a
Redis incident into a full outage; the limits protect capacity, they are not a security boundary, and
authentication itself never depends on Redis.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import RedisError

from servicekit.logging import get_logger

log = get_logger("gateway.ratelimit")

# KEYS: bucket keys. ARGV: per key `capacity, window_ms`, then `want`, the tokens asked for. Grants the same
# number of tokens from every bucket: `want`, or fewer when a bucket holds fewer, or none when a bucket holds
# less than one. Returns `granted` and then per key `tokens_left, ms_until_full, ms_until_next_token`.
# A `want` of 0 peeks: nothing is written, and `granted` is 1 when every bucket holds a token.
_TOKEN_BUCKET = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local want = tonumber(ARGV[#KEYS * 2 + 1])
local states = {}
local grant = math.max(want, 1)
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[i * 2 - 1])
  local window_ms = tonumber(ARGV[i * 2])
  local rate = capacity / window_ms
  local saved = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(saved[1])
  local ts = tonumber(saved[2])
  if tokens == nil or ts == nil then
    tokens = capacity
    ts = now
  end
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
  grant = math.min(grant, math.floor(tokens))
  states[i] = {capacity, window_ms, rate, tokens}
end
if grant < 1 then
  grant = 0
end
local taken = grant
if want == 0 then
  taken = 0
end
local out = {grant}
for i = 1, #KEYS do
  local capacity, window_ms, rate, tokens = unpack(states[i])
  tokens = tokens - taken
  if want > 0 then
    redis.call('HSET', KEYS[i], 'tokens', tostring(tokens), 'ts', now)
    redis.call('PEXPIRE', KEYS[i], window_ms * 2)
  end
  local wait_ms = 0
  if tokens < 1 then
    wait_ms = math.ceil((1 - tokens) / rate)
  end
  table.insert(out, math.floor(tokens))
  table.insert(out, math.ceil((capacity - tokens) / rate))
  table.insert(out, wait_ms)
end
return out
"""
WARN_EVERY_SECONDS = 10.0
SKIP_AFTER_FAILURE_SECONDS = 1.0
# Leasing: a busy bucket's tokens are taken from Redis a few at a time and spent in process. A lease starts at
# one token and doubles each time one is used up before it expires, up to LEASE_FRACTION of the smallest
# bucket, so buckets under 100 requests per window are always charged one token at a time (exact), and a
# client that stops loses at most the unused part of one small lease. A lease of four tokens or more is topped
# up (doubling likewise) when it is down to TOP_UP_AT of its size, by the request that finds it there, while
# the others go on spending what is left: a busy key's requests do not queue behind a Redis round trip.
LEASE_FRACTION = 0.02
MAX_LEASE = 64
LEASE_SECONDS = 0.25
MAX_LEASES = 10_000
TOP_UP_AT = 0.25


class LimitSpecError(ValueError):
    """A rate-limit setting is malformed."""


@dataclass(frozen=True)
class Limit:
    """A bucket of `requests` tokens refilled over `seconds`."""

    requests: int
    seconds: float

    @classmethod
    def parse(cls, spec: str) -> Limit:
        """Reads `requests/seconds`, such as `60/60`."""
        count, _, window = spec.strip().partition("/")
        try:
            limit = cls(int(count), float(window))
        except ValueError:
            raise LimitSpecError(f"expected requests/seconds such as 60/60, got {spec!r}") from None
        if limit.requests < 1 or limit.seconds <= 0:
            raise LimitSpecError(f"a limit needs at least 1 request over a positive window, got {spec!r}")
        return limit


def parse_plan_limits(spec: str) -> dict[str, Limit]:
    """Reads `plan:requests/seconds,...` such as `default:60/60,pro:600/60`; `default` is required."""
    limits: dict[str, Limit] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        plan, sep, limit = item.partition(":")
        if not sep or not plan.strip():
            raise LimitSpecError(f"expected plan:requests/seconds, got {item!r}")
        limits[plan.strip()] = Limit.parse(limit)
    if "default" not in limits:
        raise LimitSpecError("the plan limits need a `default` entry for plans not listed")
    return limits


class Bucket(NamedTuple):
    """One bucket to charge: its Redis key and its limit (a tuple: built for every request)."""

    key: str
    limit: Limit


class Verdict(NamedTuple):
    """The outcome for the bucket that matters most: the refusing one, else the one closest to empty.

    A tuple, since one is made for every request.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: int

    def headers(self) -> dict[str, str]:
        """The RateLimit-* response headers (IETF draft `RateLimit` fields, one per header)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`headers()` as ASGI header pairs (lower-case names)."""
        headers = [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % self.reset_seconds),
        ]
        if not self.allowed:
            headers.append((b"retry-after", b"%d" % self.retry_after_seconds))
        return headers


@dataclass
class _Lease:
    """Tokens taken from Redis for a set of buckets and not spent yet."""

    tokens: int
    size: int
    expires_at: float
    verdict: Verdict
    # At or below this many tokens, the next request tops the lease up (0: only refilled once used up).
    low: int = 0


class RateLimiter:
    """Charges buckets through one Lua script; answers None (let the request through) when Redis is down."""

    def __init__(self, redis: Redis | None, prefix: str = "gateway:ratelimit:", clock: Any = time.monotonic):
        self._redis = redis
        self._script = redis.register_script(_TOKEN_BUCKET) if redis is not None else None
        self._prefix = prefix
        self._clock = clock
        self._skip_until = 0.0
        self._warned_at = -math.inf
        self._leases: dict[tuple[str, ...], _Lease] = {}
        self._refills: dict[tuple[str, ...], asyncio.Future[None]] = {}

    def spend(self, key: tuple[str, ...]) -> Verdict | None:
        """A token from the live lease of the buckets named `key` (their keys, in order), if it holds one.

        The cheap path of `charge`, for callers that know the keys: None means `charge` must be called.
        """
        lease = self._leases.get(key)
        if lease is None or lease.tokens <= 0 or self._clock() >= lease.expires_at:
            return None
        if lease.tokens <= lease.low and key not in self._refills:
            return None  # this caller is the one to top it up
        lease.tokens -= 1
        return _with_spare(lease.verdict, lease.tokens)

    async def charge(self, buckets: Sequence[Bucket]) -> Verdict | None:
        """Takes one token from every bucket if all have one, else none; None means Redis was not asked."""
        key = tuple([b.key for b in buckets])
        while True:
            spent = self.spend(key)
            if spent is not None:
                return spent
            refill = self._refills.get(key)
            if refill is None:
                break
            # Another request is fetching this lease: wait for it rather than ask Redis as well.
            await asyncio.shield(refill)
        lease = self._leases.get(key)
        refill = self._refills[key] = asyncio.get_running_loop().create_future()
        try:
            if lease is not None and lease.tokens > 0 and self._clock() < lease.expires_at:
                return await self._top_up(buckets, lease)
            return await self._refill(key, buckets, lease)
        finally:
            del self._refills[key]
            refill.set_result(None)

    async def _top_up(self, buckets: Sequence[Bucket], lease: _Lease) -> Verdict:
        """Spends a token of a lease that is running low, then leases more for the requests that follow."""
        lease.tokens -= 1
        spent = _with_spare(lease.verdict, lease.tokens)
        size = min(_lease_cap(buckets), lease.size * 2)
        raw = await self._run(buckets, size)
        if raw is None or raw[0] < 1:
            lease.low = 0  # Redis is down or the buckets are empty: spend what is left, then ask again
            return spent
        lease.tokens += raw[0]
        lease.size, lease.low = size, _low_water(size)
        lease.expires_at = self._clock() + LEASE_SECONDS
        lease.verdict = _verdict(buckets, raw)
        return spent

    async def _refill(
        self, key: tuple[str, ...], buckets: Sequence[Bucket], lease: _Lease | None
    ) -> Verdict | None:
        now = self._clock()
        size = 1
        if lease is not None and lease.tokens == 0:
            size = min(_lease_cap(buckets), lease.size * 2)
        raw = await self._run(buckets, size)
        if raw is None:
            return None
        verdict = _verdict(buckets, raw)
        if not verdict.allowed:
            self._leases.pop(key, None)
            return verdict
        if len(self._leases) >= MAX_LEASES:
            self._leases = {k: v for k, v in self._leases.items() if v.expires_at > now}
        spare = raw[0] - 1
        self._leases[key] = _Lease(spare, size, now + LEASE_SECONDS, verdict, _low_water(size))
        return _with_spare(verdict, spare)

    async def peek(self, buckets: Sequence[Bucket]) -> Verdict | None:
        """Whether every bucket holds a token, without taking any; None means Redis was not asked."""
        raw = await self._run(buckets, 0)
        return None if raw is None else _verdict(buckets, raw)

    async def _run(self, buckets: Sequence[Bucket], want: int) -> list[int] | None:
        if self._script is None or not buckets or self._clock() < self._skip_until:
            return None
        args: list[Any] = []
        for bucket in buckets:
            args += [bucket.limit.requests, math.ceil(bucket.limit.seconds * 1000)]
        try:
            raw = await self._script(keys=[self._prefix + b.key for b in buckets], args=[*args, want])
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return None
        return [int(value) for value in raw]

    def _unavailable(self, exc: Exception) -> None:
        # Skipping Redis for a moment keeps a dead Redis from adding a connect timeout to every request.
        now = self._clock()
        self._skip_until = now + SKIP_AFTER_FAILURE_SECONDS
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("ratelimit.unavailable", error=type(exc).__name__, action="requests pass unlimited")


def _with_spare(verdict: Verdict, spare: int) -> Verdict:
    # The tokens leased but not spent yet are still the caller's to use.
    allowed, limit, remaining, reset_seconds, retry_after_seconds = verdict
    return Verdict(allowed, limit, remaining + spare, reset_seconds, retry_after_seconds)


def _low_water(size: int) -> int:
    return int(size * TOP_UP_AT) if size >= 4 else 0


def _lease_cap(buckets: Sequence[Bucket]) -> int:
    smallest = min(b.limit.requests for b in buckets)
    return max(1, min(MAX_LEASE, math.floor(smallest * LEASE_FRACTION)))


def _verdict(buckets: Sequence[Bucket], raw: list[int]) -> Verdict:
    allowed = raw[0] > 0
    per_bucket = [
        Verdict(
            allowed=allowed,
            limit=bucket.limit.requests,
            remaining=max(0, raw[1 + 3 * i]),
            reset_seconds=math.ceil(raw[2 + 3 * i] / 1000),
            retry_after_seconds=max(1, math.ceil(raw[3 + 3 * i] / 1000)),
        )
        for i, bucket in enumerate(buckets)
    ]
    if not allowed:
        # The bucket that refused is the one with the longest wait for its next token.
        return max(per_bucket, key=lambda v: (v.remaining == 0, v.retry_after_seconds))
    return min(per_bucket, key=lambda v: v.remaining / v.limit)


def check_limits(settings: Any) -> None:
    """Raises LimitSpecError naming the first malformed rate-limit setting, so a bad value stops the start."""
    for name, parse in (
        ("RATE_LIMITS", parse_plan_limits),
        ("RATE_LIMIT_IP", Limit.parse),
        ("RATE_LIMIT_AUTH_FAILURES", Limit.parse),
    ):
        try:
            parse(getattr(settings, name.lower()))
        except LimitSpecError as exc:
            raise LimitSpecError(f"{name}: {exc}") from None


def plan_limit(limits: Mapping[str, Limit], plan: str) -> Limit:
    """The limit of `plan`, or the default one for a plan the settings do not list."""
    return limits.get(plan) or limits["default"]
