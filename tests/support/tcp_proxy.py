"""A TCP relay on loopback for gRPC (HTTP/2) that can hold back a server's answers, to open a crash window
at an exact step.

Put between a client and its server, it forwards bytes both ways. After `hold_replies()` it keeps the first
answer frame (HEADERS or DATA on a request stream) the server sends, and everything after it, until
`release()`; connection upkeep (SETTINGS, PING, WINDOW_UPDATE) before that still flows, so the connection
stays healthy. The server believes its answer left; a test can so let a server finish a request while the
client never learns of it, then kill the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.support.infra import free_port

FRAME_HEADER = 9  # length (3 bytes), type, flags, stream id (4 bytes)
ANSWER_FRAMES = {0x0, 0x1}  # DATA, HEADERS


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_port`; answers can be held back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.replies_open = asyncio.Event()
        self.replies_open.set()
        self.held_frames = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def hold_replies(self) -> None:
        self.replies_open.clear()

    def release(self) -> None:
        self.replies_open.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        pumps = [
            asyncio.create_task(self._requests(client_reader, server_writer)),
            asyncio.create_task(self._replies(server_reader, client_writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_writer, server_writer):
                writer.close()

    @staticmethod
    async def _requests(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def _replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forwards the server's HTTP/2 frames whole, stopping at the first answer frame while held."""
        buffer = b""
        while data := await reader.read(65536):
            buffer += data
            while len(buffer) >= FRAME_HEADER:
                end = FRAME_HEADER + int.from_bytes(buffer[:3], "big")
                if len(buffer) < end:
                    break
                frame, buffer = buffer[:end], buffer[end:]
                stream = int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF
                if stream and frame[3] in ANSWER_FRAMES and not self.replies_open.is_set():
                    self.held_frames += 1
                    await self.replies_open.wait()
                writer.write(frame)
            await writer.drain()


@asynccontextmanager
async def tcp_proxy(target_port: int) -> AsyncIterator[TcpProxy]:
    """A started proxy to `target_port`, closed when the block ends."""
    proxy = TcpProxy(target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
