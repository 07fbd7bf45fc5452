"""Runs the six services as child processes: migrations first, then all services at once, then waits until
each answers its health check. Merges their output into one log. On a signal or a failure stops them all,
leaving no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.config import REPO_ROOT, Service, StackConfig
from devstack.infra import die_with_parent
from devstack.render import Renderer

TAIL_LINES = 25
LINE_LIMIT = 1 << 20


class NotReady(Exception):
    """A service did not become ready within the timeout."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service


@dataclass
class Child:
    """One running service process, the tasks copying its output and the last lines it wrote."""

    name: str
    process: asyncio.subprocess.Process
    exited: asyncio.Task[int]
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    def signal(self, sig: signal.Signals) -> None:
        """Signals the child's whole process group, so helpers it started go too."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


class Runner:
    def __init__(self, config: StackConfig, renderer: Renderer, say: Callable[[str], None]) -> None:
        self.config = config
        self.renderer = renderer
        self.say = say
        self.children: list[Child] = []
        self.stopping = asyncio.Event()
        self.hurry = asyncio.Event()

    def on_signal(self) -> None:
        """First Ctrl-C or SIGTERM: stop gracefully; a second one: kill what is left right away."""
        if self.stopping.is_set():
            self.hurry.set()
        self.stopping.set()

    async def run(self, database_url: str, redis_url: str, started: float, data_note: str) -> int:
        """Migrates, starts, waits; returns the exit status once the stack has stopped."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.on_signal)
        envs = {s.name: self.config.service_env(s, database_url, redis_url) for s in self.config.services}
        try:
            for service in (s for s in self.config.services if s.migrates):
                status = await self._migrate(service, envs[service.name])
                if status is not None:
                    return status
            return await self._serve(envs, started, data_note)
        finally:
            await self._shutdown()

    async def _spawn(self, service: Service, subcommand: str, env: dict[str, str]) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            service.name,
            subcommand,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            process_group=0,
            preexec_fn=partial(die_with_parent, signal.SIGTERM),
            limit=LINE_LIMIT,
        )
        child = Child(service.name, process, asyncio.create_task(process.wait()))
        assert process.stdout is not None
        assert process.stderr is not None
        child.pumps = [asyncio.create_task(self._pump(child, s)) for s in (process.stdout, process.stderr)]
        self.children.append(child)
        return child

    async def _pump(self, child: Child, stream: asyncio.StreamReader) -> None:
        """Copies one output stream of a child into the combined log, a line at a time."""
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line over LINE_LIMIT: show what there is
                raw = await stream.read(LINE_LIMIT)
            if not raw:
                return
            text = raw.decode(errors="replace").rstrip("\r\n")
            child.tail.append(text)
            self.say(self.renderer.line(child.name, text))

    async def _migrate(self, service: Service, env: dict[str, str]) -> int | None:
        """Runs `python -m <service> migrate`; returns an exit status when the stack must not go on."""
        self.say(self.renderer.line("stack", f"migrating {service.name}"))
        child = await self._spawn(service, "migrate", env)
        winner, _ = await _first(child.exited, self.stopping.wait())
        if winner != 0:
            return 0
        await asyncio.gather(*child.pumps)
        self.children.remove(child)
        if child.process.returncode != 0:
            self._report(child, f"migration failed with exit code {child.process.returncode}")
            return 1
        return None

    async def _serve(self, envs: dict[str, dict[str, str]], started: float, data_note: str) -> int:
        for service in self.config.services:
            await self._spawn(service, "serve", envs[service.name])
        self.say(self.renderer.line("stack", "started " + ", ".join(c.name for c in self.children)))
        winner, future = await _first(self._any_exit(), self._all_ready(), self.stopping.wait())
        if winner == 1:
            try:
                future.result()
            except NotReady as err:
                child = next(c for c in self.children if c.name == err.service)
                self._report(child, f"was not ready after {self.config.ready_timeout_s:.0f} s")
                return 1
            self._banner(time.monotonic() - started, data_note, envs["identity"])
            winner, future = await _first(self._any_exit(), self.stopping.wait())
        if winner != 0 or self.stopping.is_set():
            return 0
        crashed = future.result()
        assert isinstance(crashed, Child)
        await asyncio.wait(crashed.pumps, timeout=2)  # its last words, for the report
        self._report(crashed, f"exited with code {crashed.process.returncode}")
        return 1

    async def _all_ready(self) -> None:
        await asyncio.gather(*(self._wait_ready(s) for s in self.config.services))

    async def _any_exit(self) -> Child:
        by_task = {c.exited: c for c in self.children}
        done, _ = await asyncio.wait(by_task, return_when=asyncio.FIRST_COMPLETED)
        return by_task[done.pop()]

    async def _wait_ready(self, service: Service) -> None:
        deadline = time.monotonic() + self.config.ready_timeout_s
        probe = _http_ready if service.http_port is not None else _grpc_serving
        while not await probe(service.address):
            if time.monotonic() > deadline:
                raise NotReady(service.name)
            await asyncio.sleep(0.2)
        self.say(self.renderer.line("stack", f"{service.name} ready on {service.address}"))

    def _report(self, child: Child, reason: str) -> None:
        lines = [self.renderer.line("stack", f"✗ {child.name} {reason}; stopping the stack")]
        if child.tail:
            lines.append(self.renderer.line("stack", f"last output of {child.name}:"))
            lines += [textwrap.indent(self.renderer.line(child.name, text), "    ") for text in child.tail]
        self.say("\n".join(lines))

    def _banner(self, elapsed: float, data_note: str, identity_env: dict[str, str]) -> None:
        url = self.config.gateway_url
        # URLs from the developer's environment are referred to, not printed: they may hold passwords.
        db = '"$DATABASE_URL"' if self.config.database_url else identity_env["DATABASE_URL"]
        cache = '"$REDIS_URL"' if self.config.redis_url else identity_env["REDIS_URL"]
        rule = "─" * 72
        self.say(
            "\n".join(
                [
                    rule,
                    f"  stack ready in {elapsed:.1f} s: comfy-api-service is up",
                    f"  gateway   {url}",
                    f"  API docs  {url}/docs",
                    f"  API key   DATABASE_URL={db} REDIS_URL={cache}"
                    " .venv/bin/python -m identity create-user --email you@example.com",
                    f"  data      {data_note}",
                    "  Ctrl-C stops the stack",
                    rule,
                ]
            )
        )

    async def _shutdown(self) -> None:
        """SIGTERM to every service, gateway first; SIGKILL for what is left after the grace period."""
        children, self.children = self.children, []
        running = [c for c in children if c.process.returncode is None]
        running.sort(key=lambda c: c.name != self.config.gateway.name)
        if running:
            self.say(self.renderer.line("stack", "stopping " + ", ".join(c.name for c in running)))
            for child in running:
                child.signal(signal.SIGTERM)
            exits = [c.exited for c in running]
            await _first(asyncio.wait(exits, timeout=self.config.stop_timeout_s), self.hurry.wait())
        for child in children:
            if child.process.returncode is None:
                self.say(self.renderer.line("stack", f"{child.name} did not stop in time; killing it"))
            child.signal(signal.SIGKILL)  # also reaches anything left in its process group
        await asyncio.gather(*(c.exited for c in children))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(p for c in children for p in c.pumps)), 5)


async def _first(*aws: Awaitable[object]) -> tuple[int, asyncio.Future[object]]:
    """Waits until the first of `aws` finishes; returns its position and future. Coroutines that lost are
    cancelled; tasks passed in (a child's exit) are left running."""
    futures = [asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    for future, given in zip(futures, aws, strict=True):
        if future in pending and future is not given:
            future.cancel()
    index = next(i for i, f in enumerate(futures) if f in done)
    return index, futures[index]


async def _grpc_serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # the typeshed stub lacks the methods
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        except grpc.aio.AioRpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def _http_ready(address: str) -> bool:
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
        try:
            response = await client.get(f"http://{address}/ready")
        except httpx.HTTPError:
            return False
    return response.status_code == 200
