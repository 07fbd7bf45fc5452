"""Benchmark: how long a progress event takes from the runtime to a developer's SSE stream.

    .venv/bin/python benchmarks/jobs_progress_latency.py [--jobs 30] [--nodes 10]

The local CPU runtime runs inside this process, with its WebSocket sends timestamped (the moment a frame has
been written to the inference service's socket, i.e. left the runtime). identity, billing, inference, jobs
and the gateway run as separate processes (see jobs_stack.py), pointed at that runtime. Each job is a raw
workflow of --nodes blurs in a row (about 0.1 s each), and every node start the runtime announces
(`executing`) travels: inference (NodeStartedEvent) -> jobs (progress snapshot, Redis fan-out) -> jobs'
WatchJob -> gateway -> `GET /api/v1/jobs/{id}/events`. The SSE client, in this process too, notes when each
`progress` event arrives; both ends read the same clock. The first event of each stream is a replay of the
job's current state, not a live one, and is left out.

The same-run baseline is a WebSocket client of the runtime itself, which receives the same frames directly
(a second socket under the inference service's client id is not possible, so it watches its own prompts,
interleaved with the jobs). Prints p50, p90 and p99 for both. Targets: p50 <= 10 ms, p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from aiohttp import web
from jobs_stack import percentile, running_stack

from inference.domain.prompts import prompt_id_for
from inference.runtime import hub as runtime_hub
from inference.runtime.files import DataDirs
from inference.runtime.server import build_app
from inference.runtime.state import Runtime

SENT: dict[tuple[str, str], float] = {}  # (prompt id, node id) -> when `executing` left the runtime


def instrument() -> None:
    """Timestamps every `executing` frame once the runtime has written it to a socket."""
    send = runtime_hub._send_quietly

    async def timed(ws: Any, kind: str, payload: Any) -> None:
        await send(ws, kind, payload)
        if kind == "json" and payload.get("type") == "executing":
            data = payload["data"]
            if data.get("node") is not None and data.get("prompt_id"):
                SENT.setdefault((data["prompt_id"], str(data["node"])), time.perf_counter())

    runtime_hub._send_quietly = timed


def workflow(nodes: int, salt: int) -> dict[str, Any]:
    graph: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 640, "height": 640, "batch_size": 1, "color": salt},
        }
    }
    for index in range(nodes):
        graph[str(index + 2)] = {
            "class_type": "ImageBlur",
            "inputs": {"image": [str(index + 1), 0], "blur_radius": 6, "sigma": 2.0},
        }
    graph["99"] = {
        "class_type": "SaveImage",
        "inputs": {"images": [str(nodes + 1), 0], "filename_prefix": "progress"},
    }
    return graph


async def through_sse(
    session: aiohttp.ClientSession, url: str, key: str, graph: dict[str, Any]
) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    async with session.post(f"{url}/api/v1/jobs", json={"workflow": graph}, headers=headers) as reply:
        assert reply.status == 201, await reply.text()
        name = (await reply.json())["name"]
    prompt = prompt_id_for(f"{name}/attempts/1")
    arrivals: list[tuple[str, float]] = []
    first = True
    event = ""
    async with session.get(f"{url}/api/v1/{name}/events", headers=headers) as stream:
        async for raw in stream.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                at = time.perf_counter()
                job = json.loads(line[6:])
                node = job.get("progress", {}).get("node_id")
                if not first and event in ("progress", "running") and node:
                    arrivals.append((node, at))
                first = False
    seen: set[str] = set()
    latencies = []
    for node, at in arrivals:
        if node in seen or (prompt, node) not in SENT:
            continue
        seen.add(node)
        latencies.append((at - SENT[(prompt, node)]) * 1000)
    return latencies


async def direct(session: aiohttp.ClientSession, url: str, graph: dict[str, Any]) -> list[float]:
    client_id = uuid.uuid4().hex
    latencies = []
    async with session.ws_connect(f"{url}/ws?clientId={client_id}") as ws:
        async with session.post(f"{url}/prompt", json={"prompt": graph, "client_id": client_id}) as reply:
            prompt = (await reply.json())["prompt_id"]
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            at = time.perf_counter()
            frame = json.loads(message.data)
            data = frame.get("data", {})
            if frame["type"] == "executing" and data.get("prompt_id") == prompt and data.get("node"):
                sent = SENT.get((prompt, str(data["node"])))
                if sent is not None:
                    latencies.append((at - sent) * 1000)
            if frame["type"] == "execution_success" and data.get("prompt_id") == prompt:
                return latencies
    return latencies


def show(name: str, values: list[float]) -> None:
    print(
        f"{name:<22}{len(values):>8}{percentile(values, 0.5):>9.2f}{percentile(values, 0.9):>9.2f}"
        f"{percentile(values, 0.99):>9.2f}{max(values):>9.2f}"
    )


async def main(jobs: int, nodes: int) -> None:
    instrument()
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as folder:
        runtime = Runtime(DataDirs(await asyncio.to_thread(Path(folder).resolve)), [])
        runner = web.AppRunner(build_app(runtime), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runtime_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with running_stack(runtime_url=runtime_url) as stack:
                key = await asyncio.to_thread(stack.api_key)
                async with aiohttp.ClientSession() as session:
                    await through_sse(session, stack.gateway_url, key, workflow(2, 1))  # warm-up
                    sse: list[float] = []
                    baseline: list[float] = []
                    for index in range(jobs):
                        sse += await through_sse(session, stack.gateway_url, key, workflow(nodes, 10 + index))
                        baseline += await direct(session, runtime_url, workflow(nodes, 5000 + index))
        finally:
            await runner.cleanup()
    print(f"\n{jobs} jobs of {nodes + 2} nodes; node starts from the runtime's socket write to the client")
    print(f"{'path':<22}{'events':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    show("direct WebSocket", baseline)
    show("REST SSE", sse)
    print("targets for REST SSE: p50 <= 10 ms, p99 <= 50 ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--nodes", type=int, default=10)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.jobs, arguments.nodes))
