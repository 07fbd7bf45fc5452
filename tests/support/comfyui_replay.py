"""A scripted ComfyUI stand-in that plays back recorded transcripts (reference/comfyui-captures).

It serves the routes the adapter uses and, for each POST /prompt, replays the WebSocket frames a real
ComfyUI 0.33.0 sent for a recorded prompt, with the prompt id swapped for the submitted one. It reproduces
the traps the captures show: frames go only to the socket registered under the prompt's client_id; a second
socket with the same client id replaces the first, and closing any socket of a client id unregisters that id
(so a stale duplicate closing later silences the live one); a reconnecting client whose prompt is running
gets `executing` without a prompt_id. Binary frames are rebuilt from the recorded headers around small
generated images (the captures hold no image bytes). Used where the real local runtime cannot produce a
scenario (sampling, previews, partial acceptance, a backend restart).
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image

REFERENCE = Path("/work/shared/reference")
CAPTURES = REFERENCE / "comfyui-captures"
WORKFLOWS = REFERENCE / "comfy-workflows"


def capture(name: str) -> dict[str, Any]:
    """One capture file by its stem, e.g. "01_basic_prompt_ws_sequence"."""
    return json.loads((CAPTURES / f"{name}.json").read_text())


def object_info() -> dict[str, Any]:
    """The recorded /object_info of the image nodes and the sampling nodes."""
    info: dict[str, Any] = {}
    info.update(capture("00b_object_info_image_categories"))
    info.update(capture("00_object_info_core_image_nodes"))
    for event in capture("19_checkpoint_validation_and_switch")["events"]:
        path = event.get("path", "")
        if event.get("dir") == "http" and path.startswith("/object_info/") and event.get("response_json"):
            info.update(event["response_json"])
    return info


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(buffer, fmt)
    return buffer.getvalue()


def binary_frame(event: dict[str, Any]) -> bytes:
    """The bytes of a recorded binary frame, around a generated image."""
    kind = event["event_type"]
    if kind == 1:
        fmt = "JPEG" if event["image_format"] == 1 else "PNG"
        return struct.pack(">II", 1, event["image_format"]) + _image(fmt)
    if kind == 3:
        node = event["node_id"].encode()
        return struct.pack(">II", 3, len(node)) + node + event["text"].encode()
    metadata = json.dumps(event["metadata"]).encode()
    fmt = "PNG" if event["metadata"].get("image_type") == "image/png" else "JPEG"
    return struct.pack(">II", 4, len(metadata)) + metadata + _image(fmt)


def recorded_frames(name: str, prompt_id: str, socket: str | None = None) -> list[Any]:
    """The frames one socket received for `prompt_id`, from its execution_start to its `executing` null."""
    frames: list[Any] = []
    inside = False
    for event in capture(name)["events"]:
        if event.get("dir") != "ws-recv" or (socket and event.get("socket") != socket):
            continue
        if event["kind"] == "binary":
            if inside:
                frames.append(binary_frame(event))
            continue
        message = event["message"]
        data = message.get("data") or {}
        if message["type"] == "execution_start" and data.get("prompt_id") == prompt_id:
            inside = True
        if not inside:
            continue
        if data.get("prompt_id") not in (None, prompt_id):
            continue
        frames.append(message)
        if message["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
            break
    return frames


@dataclass
class Script:
    """What the stand-in does with the next POST /prompt."""

    frames: list[Any]
    recorded_prompt_id: str
    response: dict[str, Any] | None = None
    status: int = 200
    hold_before: int | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Prompt:
    prompt_id: str
    number: int
    graph: dict[str, Any]
    client_id: str
    script: Script | None
    node: str | None = None


class ReplayComfyUI:
    """The stand-in server; `scripts` are consumed in order by POST /prompt."""

    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.prompts: dict[str, Prompt] = {}
        self.pending: list[str] = []
        self.running: str | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.interrupts: list[Any] = []
        self.uploads: dict[str, bytes] = {}
        self.queue_reads = 0
        self.counter = 0
        self._runner: web.AppRunner | None = None
        self._worker: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/ws", self.ws)
        app.router.add_post("/prompt", self.post_prompt)
        app.router.add_get("/queue", self.get_queue)
        app.router.add_post("/queue", self.post_queue)
        app.router.add_post("/interrupt", self.post_interrupt)
        app.router.add_get("/history/{prompt_id}", self.get_history)
        app.router.add_get("/object_info", self.get_object_info)
        app.router.add_get("/system_stats", self.get_system_stats)
        app.router.add_get("/models/checkpoints", self.get_checkpoints)
        app.router.add_post("/upload/image", self.upload)
        app.router.add_get("/view", self.view)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        for ws in list(self.sockets.values()):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- WebSocket ----------------------------------------------------------------------------------------

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        client_id = request.query.get("clientId") or "anonymous"
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets[client_id] = ws
        await ws.send_json({"type": "status", "data": {"status": self._status(), "sid": client_id}})
        running = self.prompts.get(self.running or "")
        if running is not None and running.client_id == client_id and running.node:
            await ws.send_json({"type": "executing", "data": {"node": running.node}})
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            # Like ComfyUI: closing any socket of a client id unregisters the id, even a stale duplicate.
            self.sockets.pop(client_id, None)
        return ws

    async def drop_sockets(self, client_id: str) -> None:
        """Closes the server side of a client's socket (a network cut or a restart)."""
        ws = self.sockets.pop(client_id, None)
        if ws is not None:
            await ws.close()

    def _status(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": len(self.pending) + (1 if self.running else 0)}}

    async def _send(self, client_id: str, frame: Any) -> None:
        ws = self.sockets.get(client_id)
        if ws is None or ws.closed:
            return
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_json(frame)

    async def _broadcast_status(self) -> None:
        for client_id in list(self.sockets):
            await self._send(client_id, {"type": "status", "data": {"status": self._status()}})

    # -- the queue ----------------------------------------------------------------------------------------

    async def post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        script = self.scripts.pop(0) if self.scripts else None
        if script is not None and script.status != 200:
            return web.json_response(script.response, status=script.status)
        prompt_id = body["prompt_id"]
        self.counter += 1
        self.prompts[prompt_id] = Prompt(
            prompt_id, self.counter, body["prompt"], body.get("client_id", ""), script
        )
        self.pending.append(prompt_id)
        answer = {"prompt_id": prompt_id, "number": self.counter, "node_errors": {}}
        if script is not None and script.response is not None:
            answer["node_errors"] = script.response.get("node_errors", {})
        await self._broadcast_status()
        await self._broadcast_status()
        self._wake.set()
        return web.json_response(answer)

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending:
                prompt = self.prompts[self.pending.pop(0)]
                self.running = prompt.prompt_id
                await self._play(prompt)
                self.running = None
                await self._broadcast_status()

    async def _play(self, prompt: Prompt) -> None:
        script = prompt.script
        if script is None:
            return
        outputs: dict[str, Any] = {}
        messages: list[Any] = []
        for index, frame in enumerate(script.frames):
            if index == script.hold_before:
                await script.released.wait()
            if self.running != prompt.prompt_id:
                return
            if isinstance(frame, bytes):
                frame = frame.replace(script.recorded_prompt_id.encode(), prompt.prompt_id.encode())
            else:
                frame = json.loads(json.dumps(frame).replace(script.recorded_prompt_id, prompt.prompt_id))
                kind, data = frame["type"], frame["data"]
                if kind == "executing" and data.get("node"):
                    prompt.node = data["node"]
                if kind == "executed":
                    outputs[data["node"]] = data["output"]
                if kind in ("execution_start", "execution_cached", "execution_success", "execution_error",
                            "execution_interrupted"):  # fmt: skip
                    messages.append([kind, data])
                if kind in ("execution_success", "execution_error", "execution_interrupted"):
                    self._write_history(prompt, outputs, messages, kind)
            await self._send(prompt.client_id, frame)
            await asyncio.sleep(0)

    def _write_history(self, prompt: Prompt, outputs: dict[str, Any], messages: list[Any], kind: str) -> None:
        success = kind == "execution_success"
        self.history[prompt.prompt_id] = {
            "prompt": [prompt.number, prompt.prompt_id, prompt.graph, {"client_id": prompt.client_id}, []],
            "outputs": outputs if success or kind == "execution_error" else {},
            "status": {
                "status_str": "success" if success else "error",
                "completed": success,
                "messages": messages,
            },
        }

    def restart(self) -> None:
        """Forgets the queue and the history, as a restarted ComfyUI does."""
        self.pending.clear()
        self.running = None
        self.history.clear()

    async def get_queue(self, request: web.Request) -> web.Response:
        self.queue_reads += 1

        def item(prompt_id: str) -> list[Any]:
            prompt = self.prompts[prompt_id]
            return [prompt.number, prompt_id, prompt.graph, {"client_id": prompt.client_id}, []]

        # Pending items in reverse, as unsorted as the real server's.
        return web.json_response(
            {
                "queue_running": [item(self.running)] if self.running else [],
                "queue_pending": [item(p) for p in reversed(self.pending)],
            }
        )

    async def post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()
        for prompt_id in body.get("delete") or ():
            if prompt_id in self.pending:
                self.pending.remove(prompt_id)
                self.deleted.append(prompt_id)
        await self._broadcast_status()
        return web.Response()

    async def post_interrupt(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.interrupts.append(body)
        return web.Response()

    async def get_history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    async def get_object_info(self, request: web.Request) -> web.Response:
        return web.json_response(object_info())

    async def get_system_stats(self, request: web.Request) -> web.Response:
        for event in capture("09_misc_endpoints")["events"]:
            if event.get("path") == "/system_stats":
                return web.json_response(event["response_json"])
        return web.json_response({})

    async def get_checkpoints(self, request: web.Request) -> web.Response:
        return web.json_response(["random_sd15.safetensors", "random_sd15_b.safetensors"])

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        image = form["image"]
        assert isinstance(image, web.FileField)
        self.uploads[image.filename] = image.file.read()
        return web.json_response({"name": image.filename, "subfolder": "", "type": "input"})

    async def view(self, request: web.Request) -> web.Response:
        return web.Response(body=_image("PNG"), content_type="image/png")
