"""`python -m devstack up`: the whole platform on loopback, with one combined log, until Ctrl-C or SIGTERM.

Environment: DATABASE_URL / REDIS_URL use those servers instead of the embedded ones; STACK_STATE_DIR (default
.state), STACK_PORT_OFFSET (added to every port), STACK_PG_PORT, STACK_REDIS_PORT, STACK_READY_TIMEOUT (s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from types import FrameType

from devstack.config import StackConfig, redact
from devstack.infra import InfraError, start_postgres, start_redis
from devstack.render import Renderer
from devstack.runner import Runner


def _say(text: str) -> None:
    with contextlib.suppress(BrokenPipeError):
        print(text, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _start_data_servers(
    config: StackConfig, servers: contextlib.ExitStack, log: Callable[[str], None]
) -> tuple[str, str, str]:
    """Starts the embedded PostgreSQL and Redis unless their URLs are given; returns both URLs and a note
    saying where the data lives."""
    database_url, redis_url = config.database_url, config.redis_url
    if database_url is None:
        began, data_dir = time.monotonic(), config.state_dir / "postgres"
        database_url = servers.enter_context(start_postgres(data_dir, config.postgres_port)).url
        log(f"postgres ready on 127.0.0.1:{config.postgres_port} in {time.monotonic() - began:.1f} s")
        postgres_note = f"postgres {data_dir}"
    else:
        postgres_note = f"postgres {redact(database_url)}"
    if redis_url is None:
        began, data_dir = time.monotonic(), config.state_dir / "redis"
        redis_url = servers.enter_context(start_redis(data_dir, config.redis_port)).url
        log(f"redis ready on 127.0.0.1:{config.redis_port} in {time.monotonic() - began:.1f} s")
        redis_note = f"redis {data_dir}"
    else:
        redis_note = f"redis {redact(redis_url)}"
    return database_url, redis_url, f"{postgres_note}, {redis_note}"


def up(env: Mapping[str, str]) -> int:
    started = time.monotonic()
    config = StackConfig.from_env(env)
    color = sys.stdout.isatty() and "NO_COLOR" not in env
    renderer = Renderer([s.name for s in config.services] + ["postgres", "stack"], color)

    def log(message: str) -> None:
        _say(renderer.line("stack", message))

    # Until the event loop takes over, SIGTERM behaves like Ctrl-C so started servers are still stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    status = 0
    with contextlib.ExitStack() as servers:
        try:
            log(f"starting comfy-api-service, state in {config.state_dir}")
            config.state_dir.mkdir(parents=True, exist_ok=True)
            database_url, redis_url, data_note = _start_data_servers(config, servers, log)
            runner = Runner(config, renderer, _say)
            status = asyncio.run(runner.run(database_url, redis_url, started, data_note))
        except KeyboardInterrupt:
            status = 0
        except InfraError as err:
            log(f"✗ {err}")
            status = 1
        finally:
            # Stopping the data servers takes a moment; a second signal must not cut it short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    log("stack stopped")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run every service on loopback until Ctrl-C or SIGTERM")
    parser.parse_args(argv)
    return up(os.environ)


if __name__ == "__main__":
    sys.exit(main())
