"""WebSocket registry and the single ordered outbox every message goes through.

Routing mirrors ComfyUI: a message for a sid reaches only the socket registered under that sid at send
time; a message without a sid is broadcast. One socket per sid: a newer socket replaces the older one in the
registry (the older one stays open but hears nothing), and when any socket under a sid closes the sid is
unregistered, which silences a newer socket too. That last trap is reproduced on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web


class Hub:
    def __init__(self) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.flags: dict[str, dict[str, Any]] = {}
        self._outbox: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._publish())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def register(self, sid: str, ws: web.WebSocketResponse) -> None:
        self.sockets[sid] = ws
        self.flags[sid] = {}

    def unregister(self, sid: str) -> None:
        self.sockets.pop(sid, None)
        self.flags.pop(sid, None)

    def supports_preview_metadata(self, sid: str | None) -> bool:
        return sid is not None and bool(self.flags.get(sid, {}).get("supports_preview_metadata"))

    def send(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        """Queue a JSON message (from the event loop)."""
        self._outbox.put_nowait(("json", {"type": event, "data": data}, sid))

    def send_bytes(self, frame: bytes, sid: str | None = None) -> None:
        self._outbox.put_nowait(("bytes", frame, sid))

    def send_threadsafe(self, kind: str, payload: Any, sid: str | None) -> None:
        """Queue a message from a node's worker thread, after everything it queued before."""
        self._loop.call_soon_threadsafe(self._outbox.put_nowait, (kind, payload, sid))

    async def _publish(self) -> None:
        while True:
            kind, payload, sid = await self._outbox.get()
            targets = (
                list(self.sockets.values())
                if sid is None
                else [self.sockets[sid]]
                if sid in self.sockets
                else []
            )
            for ws in targets:
                await _send_quietly(ws, kind, payload)


async def _send_quietly(ws: web.WebSocketResponse, kind: str, payload: Any) -> None:
    # A socket that went away mid-send must not stop the outbox for everyone else.
    with contextlib.suppress(ConnectionError, RuntimeError):
        if kind == "json":
            await ws.send_json(payload)
        else:
            await ws.send_bytes(payload)
