"""The command line every service shares: `python -m <pkg> serve`, `python -m <pkg> migrate`, and any
subcommands a service adds of its own (`Command`), which run with the service's loaded settings."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from servicekit import logging, metrics
from servicekit.migrations import downgrade, upgrade
from servicekit.server import GrpcServer, ServiceApp, run_until_signalled
from servicekit.settings import ServiceSettings, SettingsError, load

S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True)
class Schema:
    """Where a context's migrations live and which Postgres schema they manage."""

    package: str
    name: str


@dataclass(frozen=True)
class Command(Generic[S]):
    """A service's own subcommand: `arguments` adds its options; `run` does it and returns the exit code."""

    help: str
    run: Callable[[S, argparse.Namespace], Coroutine[Any, Any, int]]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


# Each request allocates hundreds of short-lived containers that reference counting frees. At CPython's
# default young-generation threshold (700) the overlap of concurrent requests alone sets off a collection
# every few requests, each walking objects still in use; at this one such collections are rare, and what
# little cyclic garbage a service makes still goes after at most this many net allocations.
YOUNG_GENERATION_THRESHOLD = 10_000


def freeze_startup_heap() -> None:
    """Leaves what start-up built (modules, routes, schemas, clients), which lives as long as the process,
    out of every later garbage collection, and makes young-generation collections rarer."""
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])


@dataclass(frozen=True)
class ServiceMain(Generic[S]):
    """How to run one service: its settings type, its composition root and, if it has one, its schema."""

    settings_type: type[S]
    build: Callable[[S], Awaitable[ServiceApp]]
    schema: Schema | None = None
    commands: Mapping[str, Command[S]] = field(default_factory=dict)

    def __call__(self, argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(prog=f"python -m {self.settings_type.__module__.split('.')[0]}")
        commands = parser.add_subparsers(dest="command")
        commands.add_parser("serve", help="serve gRPC until SIGTERM (the default)")
        if self.schema is not None:
            migrate = commands.add_parser("migrate", help="migrate the database schema")
            migrate.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
            migrate.add_argument(
                "--down", action="store_true", help="downgrade to the revision (default base)"
            )
        for name, command in self.commands.items():
            command.arguments(commands.add_parser(name, help=command.help))
        args = parser.parse_args(argv)
        try:
            settings = load(self.settings_type, os.environ)
        except SettingsError as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            return 2
        logging.configure(settings.service_name, settings.log_level, settings.log_format)
        if args.command == "migrate":
            return self._migrate(settings, args)
        if args.command in self.commands:
            return asyncio.run(self.commands[args.command].run(settings, args))
        freeze_startup_heap()
        asyncio.run(self._serve(settings))
        return 0

    def _migrate(self, settings: S, args: argparse.Namespace) -> int:
        assert self.schema is not None
        url: str = getattr(settings, "database_url")  # noqa: B009 - declared by every service with a schema
        log = logging.get_logger("servicekit.migrate")
        if args.down:
            revision = "base" if args.revision == "head" else args.revision
            downgrade(self.schema.package, url, self.schema.name, revision)
        else:
            revision = args.revision
            upgrade(self.schema.package, url, self.schema.name, revision)
        log.info("schema.migrated", schema=self.schema.name, revision=revision, down=args.down)
        return 0

    async def _serve(self, settings: S) -> None:
        instruments = metrics.create()
        instruments.serve(settings.grpc_host, settings.metrics_port)
        app = await self.build(settings)
        server = GrpcServer(
            app,
            instruments,
            host=settings.grpc_host,
            port=settings.grpc_port,
            readiness_interval=settings.readiness_interval_seconds,
        )
        await run_until_signalled(server, settings.shutdown_grace_seconds)
