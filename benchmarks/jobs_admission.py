"""Benchmark: admission throughput of `POST /api/v1/jobs`, with execution paused.

    .venv/bin/python benchmarks/jobs_admission.py [--duration 30] [--concurrency 64] [--users 8]

Starts identity, billing, inference (with the local runtime, which validates every workflow against its node
catalog), jobs and the gateway as separate processes (see jobs_stack.py). The jobs service runs with
DISPATCH_CONCURRENCY=0, so it admits and queues but runs nothing: the queue only grows. `--users` developers,
one API key each, share `--concurrency` connections; each request submits a small raw workflow (EmptyImage,
ImageInvert, SaveImage) with an Idempotency-Key of its own, so every request is a full admission: the
gateway authenticates (cached) and charges the rate-limit buckets, jobs checks the key, has inference validate
the workflow, writes the job, has billing reserve a unit of quota, and queues it.

The same-run baseline is `GET /health` on the same gateway at the same concurrency (no authentication, no
backend). Printed: req/s, p50 and p99 of each, the ratio, and each process's CPU time per admitted job.
Target: >= 400 req/s with p99 <= 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from jobs_stack import Stack, cpu_times, percentile, running_stack

WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "bench"}},
}


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds


async def load(
    stack: Stack, session: aiohttp.ClientSession, keys: list[str], name: str, seconds: float, concurrency: int
) -> Phase:
    phase = Phase(name)
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        headers = {"Authorization": f"Bearer {keys[index % len(keys)]}"}
        while (began := time.perf_counter()) < deadline:
            if name == "health":
                request = session.get(f"{stack.gateway_url}/health")
            else:
                headers["Idempotency-Key"] = uuid.uuid4().hex
                request = session.post(
                    f"{stack.gateway_url}/api/v1/jobs", json={"workflow": WORKFLOW}, headers=headers
                )
            async with request as reply:
                await reply.read()
                if reply.status not in (200, 201):
                    phase.errors[reply.status] = phase.errors.get(reply.status, 0) + 1
                    continue
            phase.latencies_ms.append((time.perf_counter() - began) * 1000)

    before, started = cpu_times(stack), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    phase.seconds = time.perf_counter() - started
    after = cpu_times(stack)
    phase.cpu = {n: (after[n] - before[n]) / max(1, len(phase.latencies_ms)) * 1e3 for n in after}
    return phase


async def count_queued(stack: Stack) -> int:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(stack.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM jobs.jobs WHERE state = 'queued'"))
    finally:
        await connection.close()


def show(phase: Phase) -> None:
    print(
        f"{phase.name:<10}{phase.rate:>9.1f}{percentile(phase.latencies_ms, 0.5):>9.1f}"
        f"{percentile(phase.latencies_ms, 0.99):>9.1f}{len(phase.latencies_ms):>9}"
        f"   errors {phase.errors or 0}"
    )


async def main(duration: float, concurrency: int, users: int) -> None:
    async with running_stack(jobs_env={"DISPATCH_CONCURRENCY": "0"}) as stack:
        keys = [await asyncio.to_thread(stack.api_key) for _ in range(users)]
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await load(stack, session, keys, "warm-up", 3, concurrency)
            health = await load(stack, session, keys, "health", duration / 3, concurrency)
            jobs = await load(stack, session, keys, "jobs", duration, concurrency)
        queued = await count_queued(stack)
        print(f"\nconcurrency {concurrency}, {users} API keys, execution paused (DISPATCH_CONCURRENCY=0)")
        print(f"{'phase':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'requests':>9}")
        show(health)
        show(jobs)
        print(f"POST /api/v1/jobs / GET /health by req/s: {jobs.rate / health.rate:.3f}")
        print("CPU ms per admitted job: " + ", ".join(f"{n} {v:.1f}" for n, v in jobs.cpu.items()))
        print(f"jobs queued in the database: {queued}; target: >= 400 req/s with p99 <= 150 ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--users", type=int, default=8)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.duration, arguments.concurrency, arguments.users))
