"""Benchmark: how soon a developer's webhook arrives after a job ends.

    .venv/bin/python benchmarks/jobs_webhook_latency.py [--jobs 40]

Starts the stack (see jobs_stack.py) with loopback allowed as a webhook target, gives a new developer a
webhook secret and runs `portrait_pro` jobs one after another through `POST /api/v1/generate?wait=true`, each
subscribed to `job.succeeded` at a receiver on loopback in this process. Both times are taken from the job's
`end_time` (written by the jobs service on the same clock): when the generate call's answer arrived (the
same-run baseline: the outcome's fastest way to the developer) and when the webhook arrived. The webhook goes
out through the outbox (same transaction as the outcome), the relay, the delivery log and a signed POST.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import numpy as np
from aiohttp import web
from jobs_overhead import Rest, noise_png
from jobs_stack import percentile, running_stack


class Receiver:
    """A webhook endpoint on loopback noting when each job's event arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.event = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"

    async def hook(self, request: web.Request) -> web.Response:
        at = time.time()
        body = json.loads(await request.read())
        self.arrived[body["job"]["name"]] = at
        self.event.set()
        return web.Response(status=204)

    async def wait_for(self, name: str) -> float:
        async with asyncio.timeout(30):
            while name not in self.arrived:
                self.event.clear()
                await self.event.wait()
        return self.arrived[name]


def summary(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{label:<28}{statistics.median(ms):>9.1f}{percentile(ms, 0.9):>9.1f}"
        f"{percentile(ms, 0.99):>9.1f}{max(ms):>9.1f}"
    )


async def main(jobs: int) -> None:
    receiver = Receiver()
    await receiver.start()
    async with (
        running_stack(jobs_env={"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}) as stack,
        aiohttp.ClientSession() as session,
    ):
        rest = Rest(session, stack, await asyncio.to_thread(stack.api_key))
        url = f"{rest.url}/api/v1/webhook-secret/rotate"
        async with session.post(url, headers=rest.headers) as reply:
            assert reply.status == 200, await reply.text()
        rng = np.random.default_rng(5)
        answers, webhooks = [], []
        for index in range(jobs + 3):  # the first three warm every process up
            body = rest._body(await rest._upload(noise_png(128, rng)))
            body["webhook"] = {"url": receiver.url, "events": ["job.succeeded"]}
            async with session.post(
                f"{rest.url}/api/v1/generate?wait=true", json=body, headers=rest.headers
            ) as reply:
                assert reply.status == 200, await reply.text()
                answered, job = time.time(), await reply.json()
            arrived = await receiver.wait_for(job["name"])
            ended = datetime.fromisoformat(job["end_time"].replace("Z", "+00:00")).timestamp()
            if index >= 3:
                answers.append(answered - ended)
                webhooks.append(arrived - ended)
    assert receiver.runner is not None
    await receiver.runner.cleanup()
    print(f"\n{jobs} jobs one after another; milliseconds after the job's end_time")
    print(f"{'':<28}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    print(summary("generate?wait=true answer", answers))
    print(summary("job.succeeded webhook", webhooks))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=40)
    asyncio.run(main(parser.parse_args().jobs))
