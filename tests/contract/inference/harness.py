"""Runs the local runtime in-process on a free port and talks to it like a ComfyUI client; loads the
recorded captures the tests compare against."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web
from PIL import Image

from inference.runtime.files import DataDirs
from inference.runtime.server import build_app
from inference.runtime.state import Runtime

REFERENCE = Path("/work/shared/reference")
CAPTURES = REFERENCE / "comfyui-captures"
WORKFLOWS = REFERENCE / "comfy-workflows"


def capture(name: str) -> dict[str, Any]:
    return json.loads((CAPTURES / name).read_text())


def workflow(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS / name).read_text())


def pattern_png(width: int = 640, height: int = 480, alpha: bool = False) -> bytes:
    """A deterministic PNG with gradients and edges (the captures' input was 640x480)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack(
        [(x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1), ((x // 16 + y // 16) % 2) * 255],
        axis=-1,
    ).astype(np.uint8)
    if alpha:
        rgb = np.concatenate([rgb, np.full((height, width, 1), 200, dtype=np.uint8)], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Socket:
    ws: aiohttp.ClientWebSocketResponse
    received: list[Any] = field(default_factory=list)

    async def next(self, timeout: float = 30.0) -> Any:
        message = await self.ws.receive(timeout=timeout)
        if message.type == aiohttp.WSMsgType.TEXT:
            value: Any = json.loads(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            value = bytes(message.data)
        else:
            raise ConnectionError(f"socket closed: {message.type}")
        self.received.append(value)
        return value

    async def until(self, predicate: Callable[[Any], bool], timeout: float = 60.0) -> list[Any]:
        """Messages up to and including the first that satisfies `predicate`."""
        start = len(self.received)
        while True:
            message = await self.next(timeout)
            if predicate(message):
                return self.received[start:]

    async def until_done(self, prompt_id: str) -> list[Any]:
        return await self.until(
            lambda m: (
                is_type(m, "executing")
                and m["data"]["node"] is None
                and m["data"].get("prompt_id") == prompt_id
            )
        )

    async def quiet(self, seconds: float = 0.3) -> list[Any]:
        """Whatever arrives within `seconds`."""
        start = len(self.received)
        try:
            while True:
                await self.next(seconds)
        except TimeoutError:
            return self.received[start:]


def is_type(message: Any, kind: str) -> bool:
    return isinstance(message, dict) and message.get("type") == kind


def kinds(messages: list[Any]) -> list[str]:
    """Type sequence in the captures' notation (binary frames as `binary:<event>`)."""
    return [m["type"] if isinstance(m, dict) else f"binary:{int.from_bytes(m[:4], 'big')}" for m in messages]


@dataclass
class RuntimeClient:
    base: str
    session: aiohttp.ClientSession
    runtime: Runtime

    async def socket(self, client_id: str | None = None) -> Socket:
        """A connected socket whose connect frame (`status` with `sid`) was already read into `received`."""
        url = self.base.replace("http", "ws") + "/ws" + (f"?clientId={client_id}" if client_id else "")
        socket = Socket(await self.session.ws_connect(url))
        await socket.next()
        return socket

    async def post(self, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with self.session.post(self.base + path, **kwargs) as response:
            return response.status, await _body(response)

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path) as response:
            return response.status, await _body(response)

    async def upload(self, name: str, data: bytes, **fields: str) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("image", data, filename=name, content_type="image/png")
        for key, value in fields.items():
            form.add_field(key, value)
        async with self.session.post(self.base + "/upload/image", data=form) as response:
            return response.status, await _body(response)

    async def submit(self, prompt: dict[str, Any], client_id: str | None, **extra: Any) -> str:
        body = {"prompt": prompt, **extra}
        if client_id is not None:
            body["client_id"] = client_id
        status, answer = await self.post("/prompt", body)
        assert status == 200, answer
        return str(answer["prompt_id"])


async def _body(response: aiohttp.ClientResponse) -> Any:
    raw = await response.read()
    if response.content_type == "application/json":
        return json.loads(raw)
    return raw


@asynccontextmanager
async def running_runtime(data_dir: Path) -> AsyncIterator[RuntimeClient]:
    runtime = Runtime(DataDirs(data_dir), ["test"])
    runner = web.AppRunner(build_app(runtime), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            client = RuntimeClient(f"http://127.0.0.1:{port}", session, runtime)
            status, _ = await client.upload("capture_input.png", pattern_png(), overwrite="true")
            assert status == 200
            yield client
    finally:
        await runner.cleanup()


def shape(value: Any) -> Any:
    """Keys and value types, recursively; what 'same shape' means when ids and numbers differ."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__
