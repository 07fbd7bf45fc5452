"""The runtime's shared state and its prompt worker (one prompt at a time)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from inference.runtime import protocol
from inference.runtime.executor import PromptExecutor
from inference.runtime.files import DataDirs
from inference.runtime.hub import Hub
from inference.runtime.queue import PromptQueue

VERSION = "0.33.0"


class Runtime:
    def __init__(self, dirs: DataDirs, argv: list[str]) -> None:
        self.dirs = dirs
        self.argv = argv
        self.hub = Hub()
        self.queue = PromptQueue(self.queue_updated)
        self.executor = PromptExecutor(self.hub, dirs)
        self.timings: dict[str, dict[str, int]] = {}
        self._worker: asyncio.Task[None] | None = None

    def queue_updated(self) -> None:
        self.hub.send("status", {"status": protocol.queue_info(self.queue.remaining())})

    async def start(self) -> None:
        self.dirs.prepare()
        self.hub.start()
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self.hub.stop()
        self.executor.shutdown()

    async def _work(self) -> None:
        while True:
            item, task_id = await self.queue.get()
            started = protocol.now_ms()
            result = await self.executor.execute(item)
            self.timings[item.prompt_id] = {"start": started, "end": protocol.now_ms()}
            status = {
                "status_str": "success" if self.executor.success else "error",
                "completed": self.executor.success,
                "messages": [[event, data] for event, data in self.executor.status_messages],
            }
            self.queue.task_done(task_id, result, status)
            client = self.executor.client_id
            if client is not None:
                self.hub.send("executing", {"node": None, "prompt_id": item.prompt_id}, client)
            self._apply_flags()

    def _apply_flags(self) -> None:
        flags = self.queue.take_flags()
        if flags.get("free_memory"):
            self.executor.reset()

    def system_stats(self) -> dict[str, Any]:
        import platform
        import sys

        import numpy

        total, free = _memory()
        device = {
            "name": "cpu",
            "type": "cpu",
            "index": None,
            "vram_total": total,
            "vram_free": free,
            "torch_vram_total": total,
            "torch_vram_free": free,
        }
        return {
            "system": {
                "os": sys.platform,
                "ram_total": total,
                "ram_free": free,
                "comfyui_version": VERSION,
                "required_frontend_version": "",
                "installed_templates_version": "",
                "required_templates_version": "",
                "comfy_package_versions": [
                    {"name": "numpy", "installed": numpy.__version__, "required": numpy.__version__}
                ],
                "python_version": sys.version,
                "pytorch_version": f"none (numpy {numpy.__version__}, {platform.machine()})",
                "embedded_python": False,
                "deploy_environment": "comfy-api-service-local-runtime",
                "argv": self.argv,
            },
            "devices": [device],
        }


def _memory() -> tuple[int, int]:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            values = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle}
        return values["MemTotal"], values.get("MemAvailable", values["MemFree"])
    except (OSError, KeyError, ValueError):
        return 0, 0


def monotonic_ms() -> float:
    return time.monotonic() * 1000
