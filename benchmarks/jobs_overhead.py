"""Benchmark: what the whole API product adds to a job, against a direct client of the same runtime.

    .venv/bin/python benchmarks/jobs_overhead.py [--jobs 100] [--concurrent-jobs 25] [--throughput-size large]

Starts identity, billing, inference, jobs and the gateway as separate processes (see jobs_stack.py) with the
local CPU runtime as their backend, and runs the `portrait_pro` preset (blur, blend, sharpen, brightness,
contrast, save) on a fresh random image per job, so the runtime caches nothing. Three paths, interleaved job
by job (the order rotates each round), each timed from the start of the input upload until the output's
bytes are in hand:

- direct: a client of the runtime itself, the way a thin wrapper works: POST /upload/image, POST /prompt,
  wait on its WebSocket for `executed` + `execution_success`, GET /view. No authentication, no persistence.
- rest-generate: POST /api/v1/uploads, POST /api/v1/generate?wait=true (answers with the finished job and a
  signed download link of each output), GET the link.
- rest-sse: POST /api/v1/uploads, POST /api/v1/jobs, GET /api/v1/jobs/{id}/events (SSE) until the terminal
  event, GET the link.

For each it prints the median and p90 time per job, the runtime's own execution time (from its
execution_start and execution_success timestamps, read from its history) and the time beyond it, for a small
output (128x128) and a large one (a 1000x1000 noise image, about 1.4 MB as PNG). Then throughput: 4 clients
at once, each running --concurrent-jobs jobs back to back, direct and then through REST (4 developers, one
API key each), twice in alternating order, with small images (or large ones: `--throughput-size large`, where
each job keeps the runtime busy for about 0.3 s). Targets: median ratio REST / direct <= 1.10 and throughput
ratio >= 0.98.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import numpy as np
from jobs_stack import Stack, cpu_times, percentile, running_stack
from PIL import Image

PRESET = "portrait_pro"
SIZES = {"small": 128, "large": 1000}
ROOT = Path(__file__).resolve().parents[1]
PRESET_WORKFLOW = json.loads((ROOT / "services/jobs/jobs/presets/portrait_pro/workflow.json").read_text())


def noise_png(side: int, rng: np.random.Generator) -> bytes:
    pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@dataclass
class Run:
    """One job as a client saw it."""

    seconds: float
    runtime_seconds: float
    output_bytes: int


@dataclass
class Series:
    name: str
    runs: list[Run] = field(default_factory=list)

    def median_ms(self) -> float:
        return statistics.median(r.seconds for r in self.runs) * 1000

    def p90_ms(self) -> float:
        return percentile([r.seconds for r in self.runs], 0.9) * 1000

    def runtime_ms(self) -> float:
        return statistics.median(r.runtime_seconds for r in self.runs) * 1000

    def beyond_ms(self) -> float:
        return statistics.median(r.seconds - r.runtime_seconds for r in self.runs) * 1000

    def output_kb(self) -> float:
        return statistics.median(r.output_bytes for r in self.runs) / 1024


def execution_seconds(messages: list[list[Any]]) -> float:
    stamps = {name: data.get("timestamp") for name, data in messages}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000


class Direct:
    """A client of the runtime over its own protocol: one WebSocket, upload, prompt, view."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.client_id = uuid.uuid4().hex
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self) -> None:
        self.ws = await self.session.ws_connect(f"{self.url}/ws?clientId={self.client_id}")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def job(self, image: bytes) -> Run:
        assert self.ws is not None
        began = time.perf_counter()
        form = aiohttp.FormData()
        form.add_field("image", image, filename=f"{uuid.uuid4().hex}.png", content_type="image/png")
        form.add_field("overwrite", "true")
        async with self.session.post(f"{self.url}/upload/image", data=form) as reply:
            name = (await reply.json())["name"]
        graph = json.loads(json.dumps(PRESET_WORKFLOW))
        graph["1"]["inputs"]["image"] = name
        async with self.session.post(
            f"{self.url}/prompt", json={"prompt": graph, "client_id": self.client_id}
        ) as reply:
            prompt_id = (await reply.json())["prompt_id"]
        output: dict[str, Any] | None = None
        start = end = 0
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            data = frame.get("data", {})
            if data.get("prompt_id") != prompt_id:
                continue
            if frame["type"] == "execution_start":
                start = data["timestamp"]
            elif frame["type"] == "executed" and data.get("output", {}).get("images"):
                output = data["output"]["images"][0]
            elif frame["type"] == "execution_success":
                end = data["timestamp"]
                break
            elif frame["type"] in ("execution_error", "execution_interrupted"):
                raise RuntimeError(f"the runtime failed the prompt: {data}")
        assert output is not None
        async with self.session.get(f"{self.url}/view", params=output) as reply:
            body = await reply.read()
        return Run(time.perf_counter() - began, (end - start) / 1000, len(body))


class Rest:
    """A developer's client of the REST API with one API key."""

    def __init__(self, session: aiohttp.ClientSession, stack: Stack, key: str) -> None:
        self.session = session
        self.stack = stack
        self.url = stack.gateway_url
        self.headers = {"Authorization": f"Bearer {key}"}

    async def _upload(self, image: bytes) -> str:
        form = aiohttp.FormData()
        form.add_field("file", image, filename="photo.png", content_type="image/png")
        async with self.session.post(f"{self.url}/api/v1/uploads", data=form, headers=self.headers) as reply:
            assert reply.status == 201, await reply.text()
            return str((await reply.json())["upload_id"])

    def _body(self, upload_id: str) -> dict[str, Any]:
        return {"preset": {"name": PRESET}, "inputs": [{"name": "image", "upload_id": upload_id}]}

    async def _download(self, job: dict[str, Any]) -> int:
        assert job["state"] == "JOB_STATE_SUCCEEDED", job
        async with self.session.get(job["outputs"][0]["download_url"]) as reply:
            assert reply.status == 200, await reply.text()
            return len(await reply.read())

    async def generate(self, image: bytes) -> tuple[float, int, str]:
        began = time.perf_counter()
        upload_id = await self._upload(image)
        async with self.session.post(
            f"{self.url}/api/v1/generate?wait=true", json=self._body(upload_id), headers=self.headers
        ) as reply:
            assert reply.status == 200, await reply.text()
            job = await reply.json()
        size = await self._download(job)
        return time.perf_counter() - began, size, job["name"]

    async def sse(self, image: bytes) -> tuple[float, int, str]:
        began = time.perf_counter()
        upload_id = await self._upload(image)
        async with self.session.post(
            f"{self.url}/api/v1/jobs", json=self._body(upload_id), headers=self.headers
        ) as reply:
            assert reply.status == 201, await reply.text()
            name = (await reply.json())["name"]
        job: dict[str, Any] = {}
        async with self.session.get(f"{self.url}/api/v1/{name}/events", headers=self.headers) as stream:
            async for raw in stream.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    job = json.loads(line[6:])
        size = await self._download(job)
        return time.perf_counter() - began, size, name

    async def runtime_seconds(self, job_name: str) -> float:
        from inference.domain.prompts import prompt_id_for

        prompt_id = prompt_id_for(f"{job_name}/attempts/1")
        async with self.session.get(f"{self.stack.runtime_url}/history/{prompt_id}") as reply:
            entry = (await reply.json())[prompt_id]
        return execution_seconds(entry["status"]["messages"])


async def one(path: str, direct: Direct, rest: Rest, image: bytes) -> Run:
    if path == "direct":
        return await direct.job(image)
    seconds, size, name = await (rest.generate(image) if path == "rest-generate" else rest.sse(image))
    return Run(seconds, await rest.runtime_seconds(name), size)


async def latency(stack: Stack, session: aiohttp.ClientSession, jobs: int, size: str) -> dict[str, Series]:
    rng = np.random.default_rng(hash(size) & 0xFFFF)
    direct = Direct(session, stack.runtime_url)
    await direct.connect()
    rest = Rest(session, stack, await asyncio.to_thread(stack.api_key))
    paths = ["direct", "rest-generate", "rest-sse"]
    series = {p: Series(p) for p in paths}
    try:
        for _ in range(3):  # warm-up: connections, caches of every process
            for path in paths:
                await one(path, direct, rest, noise_png(SIZES[size], rng))
        for index in range(jobs):
            order = paths[index % 3 :] + paths[: index % 3]
            for path in order:
                series[path].runs.append(await one(path, direct, rest, noise_png(SIZES[size], rng)))
    finally:
        await direct.close()
    return series


async def throughput(
    stack: Stack, session: aiohttp.ClientSession, keys: list[str], per_client: int, path: str, size: str
) -> tuple[float, dict[str, float]]:
    """Jobs per second, and CPU milliseconds per job of every process that did work meanwhile."""
    rng = np.random.default_rng(99)
    images = [[noise_png(SIZES[size], rng) for _ in range(per_client)] for _ in keys]

    async def client(index: int) -> None:
        if path == "direct":
            direct = Direct(session, stack.runtime_url)
            await direct.connect()
            try:
                for image in images[index]:
                    await direct.job(image)
            finally:
                await direct.close()
        else:
            rest = Rest(session, stack, keys[index])
            for image in images[index]:
                await rest.generate(image)

    before, began = cpu_times(stack), time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(len(keys))))
    elapsed, after, count = time.perf_counter() - began, cpu_times(stack), len(keys) * per_client
    return count / elapsed, {n: (after[n] - before[n]) * 1e3 / count for n in after}


def report(size: str, series: dict[str, Series]) -> None:
    direct = series["direct"]
    print(f"\n{size} output ({direct.output_kb():.0f} KB PNG), {len(direct.runs)} jobs per path, interleaved")
    print(f"{'path':<15}{'median ms':>10}{'p90 ms':>9}{'runtime ms':>12}{'beyond ms':>11}{'ratio':>8}")
    for s in series.values():
        ratio = s.median_ms() / direct.median_ms()
        print(
            f"{s.name:<15}{s.median_ms():>10.1f}{s.p90_ms():>9.1f}{s.runtime_ms():>12.1f}"
            f"{s.beyond_ms():>11.1f}{ratio:>8.3f}"
        )


async def main(jobs: int, per_client: int, size: str) -> None:
    # Several jobs per owner may run at once (2 at the backend: one running, one queued).
    async with running_stack(jobs_env={"MAX_RUNNING_PER_OWNER": "4"}) as stack:
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            for output in SIZES if jobs else ():  # --jobs 0: throughput only
                report(output, await latency(stack, session, jobs, output))
            keys = [await asyncio.to_thread(stack.api_key) for _ in range(4)]
            rates: dict[str, list[float]] = {"direct": [], "rest": []}
            cpu: dict[str, dict[str, float]] = {}
            await throughput(stack, session, keys, 3, "rest", size)  # warm-up
            for path in ("direct", "rest", "rest", "direct"):
                rate, cpu[path] = await throughput(stack, session, keys, per_client, path, size)
                rates[path].append(rate)
            direct, rest = statistics.mean(rates["direct"]), statistics.mean(rates["rest"])
            print(f"\nthroughput, 4 concurrent clients x {per_client} {size} jobs, two rounds each")
            print(f"direct            {direct:7.2f} jobs/s   rounds {[round(r, 2) for r in rates['direct']]}")
            print(f"rest-generate     {rest:7.2f} jobs/s   rounds {[round(r, 2) for r in rates['rest']]}")
            print(f"ratio rest/direct {rest / direct:7.3f}  (target >= 0.98)")
            for path, spent in cpu.items():
                busy = ", ".join(f"{n} {ms:.1f}" for n, ms in spent.items() if ms >= 0.05)
                print(f"CPU ms per job, {path} (last round): {busy}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--concurrent-jobs", type=int, default=25)
    parser.add_argument("--throughput-size", choices=sorted(SIZES), default="small")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.jobs, arguments.concurrent_jobs, arguments.throughput_size))
