"""The local runtime's own time for the 512x512 scale+sharpen graph, beside real ComfyUI's figure.

    .venv/bin/python benchmarks/runtime_timing.py [--runs 50]

Starts `python -m inference.runtime --port 0` as its own process, then for each run uploads a fresh 512x512
PNG (so nothing is cached, as in capture 10) and submits `comfy-workflows/timing_512_scale_sharpen.json`
(LoadImage -> ImageScale 1024x1024 bilinear -> ImageSharpen r=2 -> SaveImage). It measures, per run, the
server's `execution_start` -> `execution_success` (their millisecond timestamps) and the client-observed
POST -> `execution_success`. Baseline in the same run: the same four steps called directly in this process
(no server, no queue, no WebSocket), so the ratio is the protocol's overhead. Real ComfyUI 0.33.0 on this
machine: 73-104 ms POST -> execution_success (protocol notes, section 10).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image

WORKFLOW = Path("/work/shared/reference/comfy-workflows/timing_512_scale_sharpen.json")
COMFYUI_MS = "73-104 ms"
TIMING_GRAPH = WORKFLOW.read_text()


def png(seed: int) -> bytes:
    # Smooth gradients and a few hard edges, different per seed; like the capture's 17.5 KB 512x512 PNG,
    # not noise (sharpened noise would make the PNG encode unrepresentatively slow).
    y, x = np.mgrid[0:512, 0:512]
    blocks = ((x // 64 + y // 64 + seed) % 2) * 40
    base = np.stack([x / 2 + blocks, y / 2, (x + y + seed) % 256], axis=-1)
    pixels = np.clip(base, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


async def start_runtime(data_dir: str) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inference.runtime",
        "--port",
        "0",
        "--data-dir",
        data_dir,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    ready = json.loads(await process.stdout.readline())
    return process, int(ready["port"])


async def one_run(
    session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, base: str, seed: int
) -> tuple[float, float]:
    form = aiohttp.FormData()
    form.add_field("image", png(seed), filename=f"bench_{seed}.png", content_type="image/png")
    async with session.post(base + "/upload/image", data=form) as response:
        name = (await response.json())["name"]
    prompt = json.loads(TIMING_GRAPH)
    prompt["1"]["inputs"]["image"] = name
    sent = time.perf_counter()
    async with session.post(base + "/prompt", json={"prompt": prompt, "client_id": "bench"}) as response:
        prompt_id = (await response.json())["prompt_id"]
    started = None
    while True:
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        data = json.loads(message.data)
        if data["data"].get("prompt_id") != prompt_id:
            continue
        if data["type"] == "execution_start":
            started = data["data"]["timestamp"]
        if data["type"] == "execution_success":
            assert started is not None
            return float(data["data"]["timestamp"] - started), (time.perf_counter() - sent) * 1000
        if data["type"] in ("execution_error", "execution_interrupted"):
            raise RuntimeError(data)


def direct_baseline(runs: int, data_dir: Path) -> list[float]:
    """The same work without the server: decode, resize, sharpen, encode."""
    from inference.runtime.files import DataDirs
    from inference.runtime.nodes.base import REGISTRY, NodeContext

    dirs = DataDirs(data_dir)
    dirs.prepare()
    ctx = NodeContext("1", dirs, {}, None, {}, lambda *a: None, lambda t: None, lambda: None)
    timings = []
    for seed in range(runs):
        (dirs.root / "input" / f"direct_{seed}.png").write_bytes(png(10_000 + seed))
        start = time.perf_counter()
        image = REGISTRY["LoadImage"].fn(ctx, image=f"direct_{seed}.png").outputs[0]
        image = (
            REGISTRY["ImageScale"]
            .fn(ctx, image=image, upscale_method="bilinear", width=1024, height=1024, crop="disabled")
            .outputs[0]
        )
        image = (
            REGISTRY["ImageSharpen"].fn(ctx, image=image, sharpen_radius=2, sigma=1.0, alpha=1.0).outputs[0]
        )
        REGISTRY["SaveImage"].fn(ctx, images=image, filename_prefix="direct/timing")
        timings.append((time.perf_counter() - start) * 1000)
    return timings


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        process, port = await start_runtime(str(Path(tmp) / "runtime"))
        base = f"http://127.0.0.1:{port}"
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(base + "/ws?clientId=bench") as ws,
            ):
                await one_run(session, ws, base, 99_999)  # warm-up (imports, first PNG encode)
                results = [await one_run(session, ws, base, seed) for seed in range(runs)]
        finally:
            process.terminate()
            await process.wait()
        direct = direct_baseline(runs, Path(tmp) / "direct")
    server = [r[0] for r in results]
    client = [r[1] for r in results]
    print(f"runs: {runs}")
    print(
        f"runtime execution_start -> execution_success: median {statistics.median(server):.1f} ms "
        f"(min {min(server):.1f}, max {max(server):.1f})"
    )
    print(
        f"client POST -> execution_success:            median {statistics.median(client):.1f} ms "
        f"(min {min(client):.1f}, max {max(client):.1f})"
    )
    print(f"direct node calls, no server (baseline):      median {statistics.median(direct):.1f} ms")
    print(f"ratio runtime / direct baseline: {statistics.median(server) / statistics.median(direct):.2f}")
    print(f"real ComfyUI 0.33.0 on this machine, POST -> execution_success: {COMFYUI_MS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
