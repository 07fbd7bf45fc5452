"""Running real services in the test process, each on its own real port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from billing.bootstrap import build as build_billing
from billing.settings import BillingSettings
from drive_sync.bootstrap import build as build_drive_sync
from drive_sync.settings import DriveSyncSettings
from identity.bootstrap import build as build_identity
from identity.settings import IdentitySettings
from inference.bootstrap import build as build_inference
from inference.settings import InferenceSettings
from jobs.bootstrap import build as build_jobs
from jobs.settings import JobsSettings
from servicekit import metrics
from servicekit.server import GrpcServer, ServiceApp
from servicekit.settings import load

SERVICES: dict[str, tuple[type[Any], Callable[[Any], Awaitable[ServiceApp]]]] = {
    "identity": (IdentitySettings, build_identity),
    "billing": (BillingSettings, build_billing),
    "jobs": (JobsSettings, build_jobs),
    "inference": (InferenceSettings, build_inference),
    "drive-sync": (DriveSyncSettings, build_drive_sync),
}


# Peers a service under test may call; nothing listens there unless a test passes real addresses.
UNREACHABLE_PEERS = {f"{peer}_ADDR": "127.0.0.1:9" for peer in ("IDENTITY", "BILLING", "JOBS", "INFERENCE")}


def service_settings(name: str, database_url: str, redis_url: str, **extra: str) -> Any:
    """The settings of service `name` for a test: its own databases, port 0, quick readiness checks."""
    settings_type, _ = SERVICES[name]
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "GRPC_PORT": "0",
        "READINESS_INTERVAL_SECONDS": "0.2",
        **UNREACHABLE_PEERS,
        **{k.upper(): v for k, v in extra.items()},
    }
    return load(settings_type, env)


async def wait_serving(port: int, service: str = "", timeout: float = 30.0) -> None:
    """Waits until the server on `port` reports SERVING for `service`."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"port {port} never reported SERVING")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def serving(app: ServiceApp, grace: float = 1.0) -> AsyncIterator[GrpcServer]:
    """Serves `app` on a free loopback port until the block ends; yields the started server."""
    server = GrpcServer(app, metrics.create(), host="127.0.0.1", port=0, readiness_interval=0.2)
    await server.start()
    try:
        await wait_serving(server.port)
        yield server
    finally:
        await server.stop(grace)


@asynccontextmanager
async def running_service(
    name: str, database_url: str, redis_url: str, **extra: str
) -> AsyncIterator[GrpcServer]:
    """Builds service `name` through its own composition root and serves it on a free port."""
    _, build = SERVICES[name]
    app = await build(service_settings(name, database_url, redis_url, **extra))
    async with serving(app) as server:
        yield server
