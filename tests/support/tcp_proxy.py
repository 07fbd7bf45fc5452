"""A TCP relay on loopback that can hold back one direction, to open a crash window at an exact step.

Put between a client and its server, it forwards bytes both ways; after `hold_replies()` it keeps whatever
the server sends (it still reaches the relay, so the server believes its answer left) until `release()`.
A test can so let a server finish a request while the client never learns of it, then kill the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.support.infra import free_port


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`; replies can be held back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.replies_open = asyncio.Event()
        self.replies_open.set()
        self.held_bytes = 0
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
            asyncio.create_task(self._pump(client_reader, server_writer, hold=False)),
            asyncio.create_task(self._pump(server_reader, client_writer, hold=True)),
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

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: bool) -> None:
        while data := await reader.read(65536):
            if hold and not self.replies_open.is_set():
                self.held_bytes += len(data)
                await self.replies_open.wait()
            writer.write(data)
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
