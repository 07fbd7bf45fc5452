"""The one gRPC server factory every service uses.

`GrpcServer` adds `grpc.health.v1` and reflection to a service's servicers, installs the interceptors,
binds a port (0 picks a free one, for tests), reports NOT_SERVING until every dependency answers and
again whenever one stops answering, and shuts down gracefully: NOT_SERVING first, then in-flight calls
drain within the grace period while new ones are refused, then pools are closed.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from servicekit import errors
from servicekit.interceptors import ServerInterceptor
from servicekit.logging import get_logger
from servicekit.metrics import Metrics

log = get_logger("servicekit.server")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# Clients reconnect every few minutes (GOAWAY; calls in flight finish), so new replicas behind a plain
# Kubernetes Service get their share of the load.
MAX_CONNECTION_AGE_MS = 5 * 60 * 1000


@dataclass(frozen=True)
class Registration:
    """One servicer and the generated function that adds it to a server."""

    descriptor: ServiceDescriptor
    servicer: object
    add_to_server: Callable[[Any, grpc.aio.Server], None]


@dataclass(frozen=True)
class Dependency:
    """Something the service needs before it can serve; `check` raises when it does not answer."""

    name: str
    check: Callable[[], Awaitable[object]]


@dataclass
class ServiceApp:
    """What a service's composition root hands to the server: servicers, dependencies, things to close."""

    name: str
    registrations: Sequence[Registration]
    dependencies: Sequence[Dependency] = ()
    closers: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    background: list[Callable[[], Awaitable[object]]] = field(default_factory=list)


class GrpcServer:
    """A running gRPC server for one ServiceApp."""

    def __init__(
        self, app: ServiceApp, metrics: Metrics, *, host: str, port: int, readiness_interval: float = 5.0
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port = 0
        self.readiness_interval = readiness_interval
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(
            interceptors=[ServerInterceptor(metrics)],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
            ],
        )
        self._tasks: list[asyncio.Task[object]] = []
        self._serving: bool | None = None
        self._stopped = False

    @property
    def service_names(self) -> list[str]:
        """Full names of the service's own gRPC services."""
        return [r.descriptor.full_name for r in self.app.registrations]

    async def start(self) -> int:
        """Binds, starts serving (as NOT_SERVING) and begins the readiness loop; returns the bound port."""
        for registration in self.app.registrations:
            registration.add_to_server(registration.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [
                *self.service_names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self.server,
        )
        self.port = self.server.add_insecure_port(f"{self.host}:{self.requested_port}")
        await self._set_all(NOT_SERVING)
        await self.server.start()
        self._tasks.append(asyncio.create_task(self._readiness_loop(), name="readiness"))
        self._tasks.extend(asyncio.ensure_future(work()) for work in self.app.background)
        log.info("server.started", host=self.host, port=self.port, services=self.service_names)
        return self.port

    async def _set_all(self, state: Any) -> None:
        for name in ["", *self.service_names]:
            await self.health.set(name, state)

    async def check_dependencies(self) -> list[str]:
        """Checks every dependency once; returns the names of those that did not answer."""
        failed = []
        for dependency in self.app.dependencies:
            try:
                async with asyncio.timeout(3.0):
                    await dependency.check()
            except Exception as exc:
                failed.append(dependency.name)
                log.warning("dependency.down", dependency=dependency.name, error=repr(exc)[:300])
        return failed

    async def _readiness_loop(self) -> None:
        while not self._stopped:
            serving = not await self.check_dependencies()
            if serving != self._serving:
                self._serving = serving
                await self._set_all(SERVING if serving else NOT_SERVING)
                log.info("server.serving" if serving else "server.not_serving")
            await asyncio.sleep(self.readiness_interval if serving else 0.5)

    async def stop(self, grace: float) -> None:
        """Graceful shutdown: NOT_SERVING, drain in-flight calls within `grace` seconds, close pools.

        Calling it again is a no-op, so a signal handler and a test harness may both stop the server.
        """
        if self._stopped:
            return
        self._stopped = True
        log.info("server.stopping", grace_seconds=grace)
        await self.health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=grace)
            for task in stuck:
                log.warning("server.task_stuck", task=task.get_name())
        await self.server.stop(grace)
        for close in self.app.closers:
            try:
                await close()
            except Exception:
                log.exception("server.close_failed")
        log.info("server.stopped")


async def run_until_signalled(server: GrpcServer, grace: float) -> None:
    """Serves until SIGTERM or SIGINT, then stops gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    await stop.wait()
    await server.stop(grace)


def fill_unimplemented(descriptor: ServiceDescriptor, note: str) -> Callable[[type], type]:
    """Class decorator: every RPC of `descriptor` the servicer does not define answers UNIMPLEMENTED.

    The message names the method and `note` (what delivers it), rather than grpc's bare default.
    """

    def decorate(cls: type) -> type:
        own: set[str] = set()
        for klass in cls.__mro__:
            if klass.__module__.endswith("_pb2_grpc"):
                break
            own.update(vars(klass))
        for method in descriptor.methods:
            if method.name not in own:
                setattr(
                    cls,
                    method.name,
                    _unimplemented(descriptor.name, method.name, method.server_streaming, note),
                )
        return cls

    return decorate


def _unimplemented(service: str, method: str, streaming: bool, note: str) -> Callable[..., Any]:
    def error() -> errors.Unimplemented:
        return errors.Unimplemented(
            f"{service}.{method} is not implemented yet: {note}",
            reason="NOT_IMPLEMENTED_YET",
            metadata={"method": f"{service}.{method}"},
        )

    async def unary(self: object, request: object, context: object) -> object:
        raise error()

    async def stream(self: object, request: object, context: object) -> Any:
        raise error()
        yield  # pragma: no cover - marks this function as an async generator

    chosen = stream if streaming else unary
    chosen.__name__ = method
    return chosen
