"""One ComfyUI backend: its HTTP routes, its single WebSocket, and the prompts this service watches on it.

The socket is registered under one client id per service replica and backend; every prompt is submitted with
that client id, because ComfyUI routes a prompt's events only to the socket of its client id. Reconnection
closes the old socket before opening the new one (a stale duplicate that closes later would silence the new
one), backs off exponentially, and afterwards recovers what was missed from /queue and /history. A watchdog
does the same for any watched prompt that stays silent, which also covers a socket silenced by a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from inference.adapters.comfyui import frames
from inference.adapters.comfyui.http import ComfyUIHttp
from inference.adapters.comfyui.watch import PromptWatch
from inference.domain import prompts as p
from inference.domain.catalog import Catalog, parse_catalog
from inference.service.ports import Submission
from servicekit import errors
from servicekit.logging import get_logger

log = get_logger("inference.comfyui")


@dataclass(frozen=True)
class Tuning:
    """Timings of the connection: reconnect backoff, silence watchdog, grace before prompts are lost."""

    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    silence_seconds: float = 3.0
    watchdog_interval: float = 0.5
    lost_grace_seconds: float = 15.0
    http_timeout: float = 30.0


class ComfyUIBackend:
    """A ComfyUI server (or the local runtime) reached by URL."""

    def __init__(self, name: str, url: str, client_id: str, tuning: Tuning | None = None) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.client_id = client_id
        self.tuning = tuning or Tuning()
        self.connected = False
        self.running_prompt: str | None = None
        self.queue_remaining = 0
        self.reconnects = 0
        self._session: aiohttp.ClientSession | None = None
        self._http: ComfyUIHttp | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._watches: dict[str, PromptWatch] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._catalog: Catalog | None = None
        self._catalog_lock = asyncio.Lock()
        self._disconnected_since: float | None = time.monotonic()
        self._queue_refresh: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def http(self) -> ComfyUIHttp:
        """The HTTP routes; available once started."""
        assert self._http is not None, "the backend was not started"
        return self._http

    async def start(self) -> None:
        """Opens the HTTP session and starts the socket loop and the watchdog."""
        self._session = aiohttp.ClientSession()
        self._http = ComfyUIHttp(self.name, self.url, self._session, self.tuning.http_timeout)
        self._tasks = [
            asyncio.create_task(self._socket_loop(), name=f"comfyui-socket-{self.name}"),
            asyncio.create_task(self._watchdog(), name=f"comfyui-watchdog-{self.name}"),
        ]

    async def close(self) -> None:
        """Stops the loops and closes the socket and the session."""
        self._closed = True
        for task in [*self._tasks, *([self._queue_refresh] if self._queue_refresh else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    # -- catalog -------------------------------------------------------------------------------------------

    @property
    def cached_catalog(self) -> Catalog | None:
        """The latest catalog fetched, without asking the backend."""
        return self._catalog

    async def catalog(self, refresh: bool = False) -> Catalog:
        """The node catalog (/object_info), fetched once and again after every reconnect."""
        async with self._catalog_lock:
            if self._catalog is None or refresh:
                self._catalog = parse_catalog(await self.http.object_info())
            return self._catalog

    # -- prompts -------------------------------------------------------------------------------------------

    def watch(self, prompt_id: str) -> PromptWatch:
        """Starts collecting the events of `prompt_id` (before submitting it, so nothing is missed)."""
        watch = self._watches.get(prompt_id)
        if watch is None or watch.done:
            watch = self._watches[prompt_id] = PromptWatch(prompt_id)
        return watch

    def unwatch(self, prompt_id: str) -> None:
        """Stops collecting the events of `prompt_id`."""
        self._watches.pop(prompt_id, None)

    async def submit(self, prompt_id: str, workflow: dict[str, Any], previews: bool) -> Submission:
        """Queues `workflow` under our own prompt id and client id."""
        payload = {
            "prompt": workflow,
            "prompt_id": prompt_id,
            "client_id": self.client_id,
            # Per-prompt preview method (protocol notes 12.3): stock servers send none unless asked.
            "extra_data": {"preview_method": "auto" if previews else "none"},
        }
        # The two status frames that follow an accepted prompt trigger the queue-position refresh.
        return await self.http.submit(payload)

    async def locate(self, prompt_id: str) -> tuple[str, int | None, list[p.PromptEvent]]:
        """Where the prompt is: ("running"|"pending"|"finished"|"unknown", queue position, history events)."""
        snapshot = await self.http.queue()
        if prompt_id in snapshot.running:
            return "running", None, []
        if prompt_id in snapshot.pending:
            return "pending", snapshot.position(prompt_id), []
        entry = await self.http.history(prompt_id)
        if entry is not None:
            return "finished", None, frames.history_events(entry)
        # It may have finished between the two calls: its history entry is written as it leaves the queue.
        snapshot = await self.http.queue()
        if prompt_id in snapshot.running or prompt_id in snapshot.pending:
            return (
                ("running" if prompt_id in snapshot.running else "pending"),
                snapshot.position(prompt_id),
                [],
            )
        entry = await self.http.history(prompt_id)
        return ("finished", None, frames.history_events(entry)) if entry else ("unknown", None, [])

    async def recover(self, watch: PromptWatch, restarted: bool) -> None:
        """Brings `watch` up to date from /queue and /history after a gap in the socket."""
        state, position, events = await self.locate(watch.prompt_id)
        if state == "pending" and position is not None:
            watch.push(p.PromptQueued(position))
        elif state == "finished":
            for event in events:
                watch.push(event)
        elif state == "unknown":
            if restarted:
                watch.push(p.PromptLost(f"backend {self.name} restarted and no longer knows the prompt"))
            else:
                watch.push(p.PromptRemoved())
        else:
            watch.seen()

    # -- socket --------------------------------------------------------------------------------------------

    async def _socket_loop(self) -> None:
        delay = self.tuning.backoff_initial
        while not self._closed:
            try:
                await self._connect_and_read()
                delay = self.tuning.backoff_initial
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.debug("comfyui.socket_failed", backend=self.name, error=type(exc).__name__)
            self.connected = False
            self._ws = None
            if self._disconnected_since is None:
                self._disconnected_since = time.monotonic()
                log.warning("comfyui.disconnected", backend=self.name)
            self._fail_watches_after_grace()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.tuning.backoff_max)

    async def _connect_and_read(self) -> None:
        assert self._session is not None
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        async with self._session.ws_connect(ws_url, heartbeat=20.0, max_msg_size=64 * 1024 * 1024) as ws:
            self._ws = ws
            # Must be the very first client frame, or it is ignored (protocol notes 3.2).
            await ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._on_frame(frames.decode_text(message.data))
                elif message.type == aiohttp.WSMsgType.BINARY:
                    self._on_frame(frames.decode_binary(message.data))
                elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break

    def _on_connected(self) -> None:
        self.connected = True
        self._disconnected_since = None
        self.reconnects += 1
        log.info("comfyui.connected", backend=self.name, reconnects=self.reconnects - 1)
        if self.reconnects > 1:
            self._tasks.append(
                asyncio.create_task(self._after_reconnect(), name=f"comfyui-recover-{self.name}")
            )

    async def _after_reconnect(self) -> None:
        """Refreshes the catalog (the backend may have restarted) and recovers every watched prompt."""
        with contextlib.suppress(errors.Unavailable):
            await self.catalog(refresh=True)
        for watch in list(self._watches.values()):
            with contextlib.suppress(errors.Unavailable):
                await self.recover(watch, restarted=True)

    def _on_frame(self, frame: frames.Frame) -> None:
        if frame.kind == "status":
            if frame.sid is not None:
                self._on_connected()
            if frame.queue_remaining is not None:
                self.queue_remaining = frame.queue_remaining
                self._schedule_queue_refresh()
            return
        if frame.kind == "execution_start" and frame.prompt_id:
            self.running_prompt = frame.prompt_id
        # Frames without a prompt id (reconnect replay of `executing`, legacy previews, text) concern the
        # running prompt.
        prompt_id = frame.prompt_id or self.running_prompt
        watch = self._watches.get(prompt_id) if prompt_id else None
        ended = isinstance(frame.event, p.FINAL_PROMPT_EVENTS) or frame.prompt_done
        if ended and prompt_id == self.running_prompt:
            self.running_prompt = None
        if watch is None:
            return
        if frame.event is not None:
            watch.push(frame.event)
        elif frame.prompt_done and not watch.done:
            # The prompt ended but we missed its terminal frame: read it from /history.
            self._tasks.append(asyncio.create_task(self._recover_quietly(watch, restarted=False)))
        else:
            watch.seen()

    async def _recover_quietly(self, watch: PromptWatch, restarted: bool) -> None:
        with contextlib.suppress(errors.Unavailable):
            await self.recover(watch, restarted)

    def _schedule_queue_refresh(self) -> None:
        waiting = [w for w in self._watches.values() if not w.started and not w.done]
        # A prompt alone on the backend runs now or next: unless a watch was told of a place further back,
        # there is no position worth a GET /queue.
        if not waiting or (self.queue_remaining <= 1 and all(w.position is None for w in waiting)):
            return
        if self._queue_refresh is None or self._queue_refresh.done():
            self._queue_refresh = asyncio.create_task(self._refresh_positions())

    async def _refresh_positions(self) -> None:
        try:
            snapshot = await self.http.queue()
        except errors.Unavailable:
            return
        for watch in list(self._watches.values()):
            position = snapshot.position(watch.prompt_id)
            if position is not None:
                watch.push(p.PromptQueued(position))

    def _fail_watches_after_grace(self) -> None:
        since = self._disconnected_since
        if since is None or time.monotonic() - since < self.tuning.lost_grace_seconds:
            return
        for watch in list(self._watches.values()):
            watch.push(p.PromptLost(f"backend {self.name} stopped answering"))

    async def _watchdog(self) -> None:
        """Checks on silent prompts: finished unseen (a silenced socket), lost, or still queued."""
        while not self._closed:
            await asyncio.sleep(self.tuning.watchdog_interval)
            if not self.connected:
                self._fail_watches_after_grace()
                continue
            now = time.monotonic()
            for watch in list(self._watches.values()):
                if watch.done or now - watch.last_seen < self.tuning.silence_seconds:
                    continue
                watch.seen()
                try:
                    state, _, _ = await self.locate(watch.prompt_id)
                    if state in ("finished", "unknown"):
                        await self.recover(watch, restarted=False)
                        await self._reopen_socket("a finished prompt's events never arrived")
                except errors.Unavailable:
                    continue

    async def _reopen_socket(self, why: str) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            log.warning("comfyui.socket_reopened", backend=self.name, why=why)
            await ws.close()

    # -- health --------------------------------------------------------------------------------------------

    async def probe(self) -> dict[str, Any]:
        """GET /system_stats; raises Unavailable when the backend does not answer."""
        return await self.http.system_stats()

    async def checkpoints(self) -> list[str]:
        """The checkpoint files the backend offers."""
        return await self.http.checkpoints()

    async def upload(self, filename: str, data: bytes, content_type: str) -> str:
        """Copies an input file to the backend; returns the name LoadImage must use."""
        return await self.http.upload(filename, data, content_type)

    async def view(self, file: p.OutputFile) -> tuple[bytes, str]:
        """The bytes and content type of an output file."""
        return await self.http.view(file)

    async def delete_queued(self, prompt_id: str) -> None:
        """Removes a pending prompt from the queue (no-op for a running or unknown one)."""
        await self.http.delete_queued(prompt_id)

    async def interrupt(self, prompt_id: str) -> None:
        """Interrupts the prompt if it is the running one (no-op otherwise)."""
        await self.http.interrupt(prompt_id)

    async def find_workflow(self, prompt_id: str) -> dict[str, Any] | None:
        """The graph the backend holds under `prompt_id` (queued, running or in history), if any."""
        return await self.http.find_workflow(prompt_id)
