"""Token-bucket rate limits kept in Redis, shared by every gateway replica.

One Lua script checks and charges several buckets at once (an API key's and its client IP's), atomically, so
concurrent requests on different replicas can never overdraw a bucket. A bucket of `requests/seconds` holds at
most `requests` tokens and refills continuously at `requests / seconds` tokens a second.

When Redis is unreachable the limiter fails open: requests pass and a warning is logged (at most every few
seconds). Redis holds only what may be lost, and refusing all traffic because a cache is down would turn a
Redis incident into a full outage; the limits protect capacity, they are not a security boundary, and
authentication itself never depends on Redis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from servicekit.logging import get_logger

log = get_logger("gateway.ratelimit")

# KEYS: bucket keys. ARGV: per key `capacity, window_ms, cost`. Returns `allowed` and then per key
# `tokens_left, ms_until_full, ms_until_next_token`. A cost of 0 peeks: nothing is written, and the answer
# says whether one more token is available.
_TOKEN_BUCKET = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local states = {}
local allowed = 1
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[i * 3 - 2])
  local window_ms = tonumber(ARGV[i * 3 - 1])
  local cost = tonumber(ARGV[i * 3])
  local rate = capacity / window_ms
  local saved = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(saved[1])
  local ts = tonumber(saved[2])
  if tokens == nil or ts == nil then
    tokens = capacity
    ts = now
  end
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
  if tokens < math.max(cost, 1) then
    allowed = 0
  end
  states[i] = {capacity, window_ms, cost, rate, tokens}
end
local out = {allowed}
for i = 1, #KEYS do
  local capacity, window_ms, cost, rate, tokens = unpack(states[i])
  if allowed == 1 then
    tokens = tokens - cost
  end
  if cost > 0 then
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


@dataclass(frozen=True)
class Bucket:
    """One bucket to charge: its Redis key, its limit and how many tokens the request costs."""

    key: str
    limit: Limit
    cost: int = 1


@dataclass(frozen=True)
class Verdict:
    """The outcome for the bucket that matters most: the refusing one, else the one closest to empty."""

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


class RateLimiter:
    """Charges buckets with one EVALSHA; answers None (let the request through) when Redis is unavailable."""

    def __init__(self, redis: Redis | None, prefix: str = "gateway:ratelimit:", clock: Any = time.monotonic):
        self._redis = redis
        self._script = redis.register_script(_TOKEN_BUCKET) if redis is not None else None
        self._prefix = prefix
        self._clock = clock
        self._skip_until = 0.0
        self._warned_at = -math.inf

    async def charge(self, buckets: Sequence[Bucket]) -> Verdict | None:
        """Charges every bucket if all have the tokens, else none; None means Redis could not be asked."""
        if self._script is None or not buckets or self._clock() < self._skip_until:
            return None
        args: list[Any] = []
        for bucket in buckets:
            args += [bucket.limit.requests, math.ceil(bucket.limit.seconds * 1000), bucket.cost]
        try:
            raw = await self._script(keys=[self._prefix + b.key for b in buckets], args=args)
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return None
        return _verdict(buckets, [int(value) for value in raw])

    def _unavailable(self, exc: Exception) -> None:
        # Skipping Redis for a moment keeps a dead Redis from adding a connect timeout to every request.
        now = self._clock()
        self._skip_until = now + SKIP_AFTER_FAILURE_SECONDS
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("ratelimit.unavailable", error=type(exc).__name__, action="requests pass unlimited")


def _verdict(buckets: Sequence[Bucket], raw: list[int]) -> Verdict:
    allowed = raw[0] == 1
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


def plan_limit(limits: Mapping[str, Limit], plan: str) -> Limit:
    """The limit of `plan`, or the default one for a plan the settings do not list."""
    return limits.get(plan) or limits["default"]
