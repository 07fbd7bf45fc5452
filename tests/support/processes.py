"""Services as real operating-system processes, started the way the local stack starts them.

Each one runs `python -m <package> serve` in its own process group on a fixed free port, so it can be killed
outright (SIGKILL, no shutdown hook runs) and started again on the same address its peers already dial. Its
output goes to a log file whose tail is shown when it fails to come up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx

from devstack.infra import die_with_parent
from tests.support.infra import free_port
from tests.support.servers import wait_serving

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60.0


async def wait_http(port: int, timeout: float) -> None:
    """Waits until GET /health on `port` answers 200."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"port {port} never answered /health")
            await asyncio.sleep(0.05)


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@dataclass
class ServiceProcess:
    """One service process; `start`, `kill` and `start` again keep the same port."""

    package: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    http: bool = False  # an HTTP service (the gateway): HTTP_PORT, ready when GET /health answers 200
    process: asyncio.subprocess.Process | None = None
    lives: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.package}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def full_env(self) -> dict[str, str]:
        ports = (
            {"HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(self.port)}
            if self.http
            else {"GRPC_HOST": "127.0.0.1", "GRPC_PORT": str(self.port), "METRICS_PORT": "0"}
        )
        return {
            **os.environ,
            **ports,
            "READINESS_INTERVAL_SECONDS": "0.2",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }

    async def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Starts the process and waits until its health check says SERVING."""
        assert not self.running, f"{self.package} is already running"
        self.lives += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(f"--- life {self.lives} ---\n")
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.package,
                "serve",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self.full_env(),
                cwd=REPO_ROOT,
                start_new_session=True,
                preexec_fn=partial(die_with_parent, signal.SIGKILL),
            )
        probe = wait_http(self.port, timeout) if self.http else wait_serving(self.port, timeout=timeout)
        ready = asyncio.create_task(probe)
        exited = asyncio.create_task(self.process.wait())
        done, _ = await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            raise RuntimeError(f"{self.package} exited before serving:\n{_tail(self.log_path)}")
        exited.cancel()
        try:
            ready.result()
        except TimeoutError:
            await self.kill()
            raise RuntimeError(f"{self.package} never served:\n{_tail(self.log_path)}") from None

    async def kill(self) -> None:
        """SIGKILL to the whole process group: no handler runs, nothing is flushed or closed cleanly."""
        await self._signal(signal.SIGKILL, wait=10.0)

    async def stop(self) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it lingers."""
        if not self.running:
            return
        await self._signal(signal.SIGTERM, wait=15.0)
        if self.running:
            await self.kill()

    async def _signal(self, sig: signal.Signals, wait: float) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), wait)

    def log_lines(self) -> list[dict[str, object]]:
        """The structured log lines written so far (other output skipped)."""
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
                if isinstance(parsed, dict):
                    lines.append(parsed)
        return lines
