"""`python -m devstack up` brings the whole platform up on loopback and stops it cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import grpc
import httpx
import psutil  # type: ignore[import-untyped]
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis import Redis

from devstack.config import REPO_ROOT, StackConfig
from tests.support import databases

READY_WAIT_S = 180.0
STOP_WAIT_S = 60.0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_offset_env() -> dict[str, str]:
    """STACK_* variables that move every port of the stack somewhere free, away from a developer's stack."""
    for _ in range(50):
        env = {"STACK_PORT_OFFSET": str(random.randrange(1000, 9000))}
        config = StackConfig.from_env(env)
        ports = [config.postgres_port, config.redis_port]
        ports += [p for s in config.services for p in (s.grpc_port, s.metrics_port, s.http_port) if p]
        if all(_port_free(p) for p in ports):
            return env
    raise RuntimeError("no free block of ports for the stack")


class Stack:
    """One `python -m devstack up` process, its output collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.config = StackConfig.from_env(env)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "up"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self) -> None:
        """Waits for the ready banner; fails with the stack's output if it exits or never gets there."""
        while True:
            try:
                line = self._queue.get(timeout=READY_WAIT_S)
            except queue.Empty:
                self.process.kill()
                pytest.fail(f"no ready banner after {READY_WAIT_S:.0f} s:\n{self.output}")
            if line is None:
                status = self.process.wait()
                pytest.fail(f"the stack exited with {status} before it was ready:\n{self.output}")
            if "stack ready in" in line:
                return

    def descendants(self) -> list[psutil.Process]:
        children: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
        return children

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"the stack did not stop within {STOP_WAIT_S:.0f} s of SIGTERM:\n{self.output}")
        self._reader.join(10)
        return status


StartStack = Callable[[dict[str, str]], Stack]


@pytest.fixture
def start_stack() -> Iterator[StartStack]:
    """Starts stacks for a test and makes sure none outlives it, whatever the test's outcome."""
    started: list[Stack] = []

    def start(env: dict[str, str]) -> Stack:
        stack = Stack(env)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        if stack.process.poll() is None:
            stack.process.kill()
            stack.process.wait()


def _assert_every_service_answers(config: StackConfig) -> None:
    ready = httpx.get(f"{config.gateway_url}/ready", timeout=10, trust_env=False)
    assert ready.status_code == 200, ready.text
    for service in config.services:
        if service.grpc_port is None:
            continue
        with grpc.insecure_channel(service.address) as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service.name


def _assert_stopped_cleanly(stack: Stack, children: list[psutil.Process]) -> None:
    status = stack.terminate()
    assert status == 0, stack.output
    assert stack.lines[-1].endswith("stack stopped"), stack.output
    left = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left behind: {[p.cmdline() for p in left]}"


@pytest.fixture
def stack_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server for one stack to migrate and use."""
    name = databases.unique_name("stack")
    url = asyncio.run(databases.create_database(postgres_url, name))
    yield url
    asyncio.run(databases.drop_database(postgres_url, name))


def test_stack_with_given_servers_comes_up_and_stops_on_sigterm(
    start_stack: StartStack, stack_database: str, redis_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, **_free_offset_env(), "STACK_STATE_DIR": str(tmp_path / "state")}
    env |= {"DATABASE_URL": stack_database, "REDIS_URL": redis_url, "NO_COLOR": "1"}
    stack = start_stack(env)
    stack.wait_ready()

    _assert_every_service_answers(stack.config)
    assert "http://127.0.0.1:" in stack.output
    children = stack.descendants()
    assert len(children) >= len(stack.config.services)
    _assert_stopped_cleanly(stack, children)
    assert not (tmp_path / "state" / "postgres").exists(), "started an embedded postgres despite DATABASE_URL"


@pytest.mark.timeout(600)
def test_embedded_stack_keeps_its_data_across_restarts(start_stack: StartStack, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= _free_offset_env() | {"STACK_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1"}
    first = start_stack(env)
    first.wait_ready()
    config = first.config
    database_url = f"postgresql://postgres@127.0.0.1:{config.postgres_port}/comfyapi"
    redis = Redis(port=config.redis_port)
    asyncio.run(_write_marker(database_url))
    redis.set("devstack:e2e", "kept")
    _assert_stopped_cleanly(first, first.descendants())

    second = start_stack(env)
    second.wait_ready()
    assert asyncio.run(_read_marker(database_url)) == "kept"
    assert redis.get("devstack:e2e") == b"kept"
    _assert_every_service_answers(second.config)
    _assert_stopped_cleanly(second, second.descendants())


async def _write_marker(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE TABLE devstack_e2e (note text)")
        await connection.execute("INSERT INTO devstack_e2e VALUES ('kept')")
    finally:
        await connection.close()


async def _read_marker(url: str) -> str:
    connection = await asyncpg.connect(url)
    try:
        return str(await connection.fetchval("SELECT note FROM devstack_e2e"))
    finally:
        await connection.close()
