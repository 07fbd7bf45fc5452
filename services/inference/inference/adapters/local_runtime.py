"""Starting the local CPU runtime as a child process, the embedded default backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

from servicekit import errors
from servicekit.logging import get_logger

log = get_logger("inference.local_runtime")


class LocalRuntime:
    """A `python -m inference.runtime` child process on a free loopback port."""

    def __init__(self, data_dir: Path, start_timeout: float = 60.0) -> None:
        self.data_dir = data_dir
        self.start_timeout = start_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The runtime's base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        """Starts the runtime and waits for its ready line; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "inference.runtime", "--host", "127.0.0.1", "--port", "0",
            "--data-dir", str(self.data_dir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            self.port = await asyncio.wait_for(self._ready_port(), self.start_timeout)
        except (TimeoutError, EOFError) as exc:
            await self.stop()
            raise errors.Unavailable(
                f"the local runtime did not start: {type(exc).__name__}", reason="LOCAL_RUNTIME_FAILED"
            ) from None
        log.info("local_runtime.started", port=self.port, pid=self.process.pid)
        return self.url

    async def _ready_port(self) -> int:
        assert self.process is not None
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                raise EOFError("the runtime exited before it was ready")
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict) and message.get("event") == "runtime.ready":
                    self._stderr_task = asyncio.create_task(self._drain_stdout())
                    return int(message["port"])

    async def _drain_stdout(self) -> None:
        # Keep reading so the child never blocks on a full pipe.
        assert self.process is not None
        assert self.process.stdout is not None
        while await self.process.stdout.readline():
            pass

    async def stop(self) -> None:
        """Terminates the runtime (SIGTERM, then SIGKILL after 5 s)."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
        log.info("local_runtime.stopped")
