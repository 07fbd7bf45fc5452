"""Throughput of an authenticated request at the edge, against an unauthenticated one in the same run.

    .venv/bin/python benchmarks/auth_throughput.py [--duration 20] [--concurrency 32]

Starts the real identity service and two gateways as their own processes (so the load generator does not share
their interpreter), on PostgreSQL and Redis from BENCH_DATABASE_URL / BENCH_REDIS_URL (or TEST_DATABASE_URL /
TEST_REDIS_URL, else the embedded servers the tests use). A user and an API key come from
`python -m identity create-user`. Then, each for `--duration` seconds at `--concurrency` connections:

1. `GET /health` on gateway A: the baseline, no authentication, no rate limit;
2. `GET /api/v1/me` with the key on gateway A: the cache-hit path (principal, profile and rendered answer
   cached in process; both rate-limit buckets charged from a lease that one request in 64 tops up in Redis);
3. `GET /api/v1/me` with the key on gateway B, whose cache is off (AUTH_CACHE_MAX_TTL_SECONDS=0): every
   request calls identity's AuthenticateApiKey and GetUser.

Phases 1 and 2 alternate in `--rounds` slices after a warm-up of every path, so both meet the same process
state and the same background load. Besides req/s, the gateway's own CPU time per request is printed: on a
shared machine it is the steadier measure of what authentication costs.

Both gateways log at `warning` so neither path pays for access logs, and their rate limits are set high enough
never to refuse (the buckets are still charged on every request). Prints req/s, p50 and p99 of each phase and
the ratios; the target is authenticated / baseline >= 0.85 on the cache-hit path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HIGH_LIMITS = {"RATE_LIMITS": "default:1000000000/1", "RATE_LIMIT_IP": "1000000000/1"}


@dataclass
class Phase:
    """What one load phase measured."""

    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    cpu_seconds: float = 0.0

    @property
    def cpu_us_per_request(self) -> float:
        """Gateway CPU time per request: a capacity measure that other load on the machine does not skew."""
        return self.cpu_seconds / max(1, self.requests) * 1e6

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def merge(parts: list[Phase]) -> Phase:
    """One phase out of its slices."""
    return Phase(
        parts[0].name,
        sum(p.requests for p in parts),
        sum(p.errors for p in parts),
        sum(p.seconds for p in parts),
        [latency for p in parts for latency in p.latencies_ms],
        sum(p.cpu_seconds for p in parts),
    )


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def load(
    url: str, headers: dict[str, str], seconds: float, concurrency: int, name: str, pid: int
) -> Phase:
    """Keeps `concurrency` requests in flight for `seconds`; counts answers that are not 200 as errors."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while (began := time.perf_counter()) < deadline:
                async with session.get(url) as reply:
                    await reply.read()
                    if reply.status != 200:
                        errors += 1
                latencies.append((time.perf_counter() - began) * 1000)

        started, cpu_before = time.perf_counter(), cpu_seconds(pid)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu_used = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
    return Phase(name, len(latencies), errors, elapsed, latencies, cpu_used)


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new database with identity's schema migrated, dropped afterwards."""
    from identity.main import SCHEMA
    from servicekit import migrations
    from tests.support import databases

    name = databases.unique_name("bench")
    url = await databases.create_database(server_url, name)
    try:
        await asyncio.to_thread(migrations.upgrade, SCHEMA.package, url, SCHEMA.name)
        yield url
    finally:
        await databases.drop_database(server_url, name)


@contextlib.contextmanager
def process(module: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m <module> serve` with `env`, terminated when the block ends."""
    child = subprocess.Popen(
        [sys.executable, "-m", module, "serve"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield child
    finally:
        child.terminate()
        child.wait(30)


async def wait_http(url: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} never answered")
            await asyncio.sleep(0.2)


def create_key(database_url: str, redis_url: str) -> str:
    """A new user's API key from the bootstrap command (the key is the last line it prints)."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOG_LEVEL": "warning"}
    email = f"bench-{secrets.token_hex(4)}@example.com"
    done = subprocess.run(
        [sys.executable, "-m", "identity", "create-user", "--email", email, "--scopes", "jobs:read"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def gateway_env(identity: str, redis_url: str, port: int, **extra: str) -> dict[str, str]:
    dead = "127.0.0.1:9"  # the benchmark needs no other backend
    return {
        "IDENTITY_ADDR": identity,
        **{f"{n}_ADDR": dead for n in ("BILLING", "JOBS", "INFERENCE", "DRIVE_SYNC")},
        "REDIS_URL": redis_url,
        "HTTP_PORT": str(port),
        "LOG_LEVEL": "warning",
        **HIGH_LIMITS,
        **extra,
    }


def report(phases: list[Phase], duration: float, concurrency: int) -> None:
    print(f"\nauth_throughput: concurrency {concurrency}, {duration:.0f} s per phase")
    print(f"{'phase':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'gw cpu us/req':>14}")
    for phase in phases:
        print(
            f"{phase.name:<34} {phase.rate:>9.0f} {phase.percentile(0.5):>8.2f} "
            f"{phase.percentile(0.99):>8.2f} {phase.errors:>7} {phase.cpu_us_per_request:>14.0f}"
        )
    baseline, hit, miss = phases
    print(f"\nratio cache hit / baseline : {hit.rate / baseline.rate:.3f} req/s (target >= 0.85)")
    cpu_ratio = baseline.cpu_us_per_request / hit.cpu_us_per_request
    print(f"                             {cpu_ratio:.3f} by gateway CPU per request")
    print(f"ratio cache miss / baseline: {miss.rate / baseline.rate:.3f} req/s")
    added = miss.percentile(0.5) - hit.percentile(0.5)
    print(f"cache-miss cost            : {hit.rate / miss.rate:.2f}x fewer req/s, +{added:.2f} ms at p50")


async def run(args: argparse.Namespace) -> None:
    from jobs_stack import data_servers

    from tests.support.infra import free_port
    from tests.support.servers import wait_serving

    with data_servers() as (pg_url, redis_url), contextlib.ExitStack() as stack:
        async with fresh_database(pg_url) as database_url:
            grpc_port = free_port()
            identity_env = {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "GRPC_PORT": str(grpc_port),
                "METRICS_PORT": str(free_port()),
                "LOG_LEVEL": "warning",
            }
            stack.enter_context(process("identity", identity_env))
            await wait_serving(grpc_port, timeout=60)
            key = create_key(database_url, redis_url)
            identity = f"127.0.0.1:{grpc_port}"
            hit_port, miss_port = free_port(), free_port()
            hit_gw = stack.enter_context(process("gateway", gateway_env(identity, redis_url, hit_port)))
            miss_gw = stack.enter_context(
                process(
                    "gateway", gateway_env(identity, redis_url, miss_port, AUTH_CACHE_MAX_TTL_SECONDS="0")
                )
            )
            hit_url, miss_url = f"http://127.0.0.1:{hit_port}", f"http://127.0.0.1:{miss_port}"
            await wait_http(f"{hit_url}/health")
            await wait_http(f"{miss_url}/health")
            auth = {"Authorization": f"Bearer {key}"}
            plan = [
                (f"{hit_url}/health", {}, "GET /health (baseline)", hit_gw.pid),
                (f"{hit_url}/api/v1/me", auth, "GET /api/v1/me (cache hit)", hit_gw.pid),
                (f"{miss_url}/api/v1/me", auth, "GET /api/v1/me (cache off)", miss_gw.pid),
            ]
            # Warm every path first (connections, caches, gRPC channel) so all phases meet one process state.
            for url, headers, name, pid in plan:
                await load(url, headers, args.warmup, args.concurrency, name, pid)
            # The baseline and the cache-hit phase alternate in slices, so drift in the machine's other load
            # hits both alike.
            slices: dict[str, list[Phase]] = {name: [] for _, _, name, _ in plan}
            for _ in range(args.rounds):
                for url, headers, name, pid in plan[:2]:
                    slices[name].append(
                        await load(url, headers, args.duration / args.rounds, args.concurrency, name, pid)
                    )
            url, headers, name, pid = plan[2]
            slices[name].append(await load(url, headers, args.duration, args.concurrency, name, pid))
            report([merge(parts) for parts in slices.values()], args.duration, args.concurrency)
            stack.close()  # stop the services before their database is dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase (default 20)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per phase, first")
    parser.add_argument(
        "--rounds", type=int, default=4, help="slices the baseline and hit phases alternate in"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
