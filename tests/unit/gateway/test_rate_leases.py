"""The rate limiter's leases against real Redis: busy buckets go lease by lease, never overdrawn."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.ratelimit import Bucket, Limit, RateLimiter, Verdict

DAY = 86_400
KEY = Bucket("api_key:apiKeys/k1", Limit(100_000, DAY))
IP = Bucket("ip:10.0.0.1", Limit(100_000, DAY))


@pytest.fixture
async def redis(clean_redis: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(clean_redis)
    yield client
    await client.aclose()


class CountingLimiter(RateLimiter):
    """Counts the script runs, each a Redis round trip."""

    runs = 0

    async def _run(self, buckets: object, want: int) -> list[int] | None:
        self.runs += 1
        return await super()._run(buckets, want)  # type: ignore[arg-type]


def allowed(verdicts: list[Verdict | None]) -> list[Verdict]:
    return [v for v in verdicts if v is not None and v.allowed]


async def test_racing_requests_spend_a_bucket_exactly_and_then_are_refused(redis: Redis) -> None:
    limiter = RateLimiter(redis)
    buckets = [Bucket(KEY.key, Limit(1000, DAY)), IP]

    async def client() -> list[Verdict | None]:
        return [await limiter.charge(buckets) for _ in range(60)]

    verdicts = [v for batch in await asyncio.gather(*(client() for _ in range(20))) for v in batch]

    # 1,200 requests race for 1,000 tokens refilled at one every 86 s: leased tokens are all spent, and
    # none is spent twice.
    assert len(allowed(verdicts)) in (1000, 1001)
    refused = [v for v in verdicts if v is not None and not v.allowed]
    assert len(refused) == len(verdicts) - len(allowed(verdicts))
    assert all(v.retry_after_seconds >= 1 and v.remaining == 0 for v in refused)


async def test_a_busy_key_asks_redis_once_per_lease_and_counts_down_by_one(redis: Redis) -> None:
    limiter = CountingLimiter(redis)
    buckets = [KEY, IP]

    verdicts = [await limiter.charge(buckets) for _ in range(1000)]

    remaining = [v.remaining for v in allowed(verdicts)]
    assert len(remaining) == 1000
    # The count a client sees falls by one per request (give or take the refill of the buckets meanwhile).
    assert all(-1 <= later - earlier <= 1 for earlier, later in itertools.pairwise(remaining))
    # Leases double up to 64 tokens (2% of the bucket caps them at 2,000): some 20 round trips, not 1,000.
    assert limiter.runs <= 30
    assert limiter.spend((KEY.key, IP.key)) is not None


async def test_small_buckets_are_charged_one_token_at_a_time(redis: Redis) -> None:
    limiter = CountingLimiter(redis)
    buckets = [Bucket("ip:10.0.0.2", Limit(50, DAY))]

    verdicts = [await limiter.charge(buckets) for _ in range(52)]

    assert [v.remaining for v in allowed(verdicts)] == list(range(49, -1, -1))
    assert [v is not None and v.allowed for v in verdicts[50:]] == [False, False]
    assert limiter.runs == 52
