"""gRPC clients of every backend service, opened once per gateway process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from comfyapi.identity.v1 import identity_service_pb2_grpc
from comfyapi.jobs.v1 import jobs_service_pb2_grpc
from gateway.settings import GatewaySettings
from servicekit.channels import open_channel

SERVING = health_pb2.HealthCheckResponse.ServingStatus.Name(health_pb2.HealthCheckResponse.SERVING)


@dataclass
class Backends:
    """One channel per service plus the typed stubs the routes use."""

    channels: dict[str, grpc.aio.Channel]
    jobs: jobs_service_pb2_grpc.JobServiceStub
    identity: identity_service_pb2_grpc.IdentityServiceStub

    @classmethod
    def open(cls, settings: GatewaySettings) -> Backends:
        """Opens a channel to every service; connecting is lazy, so this never blocks."""
        channels = {
            "identity": open_channel(settings.identity_addr),
            "billing": open_channel(settings.billing_addr),
            "jobs": open_channel(settings.jobs_addr),
            "inference": open_channel(settings.inference_addr),
            "drive-sync": open_channel(settings.drive_sync_addr),
        }
        return cls(
            channels=channels,
            jobs=jobs_service_pb2_grpc.JobServiceStub(channels["jobs"]),
            identity=identity_service_pb2_grpc.IdentityServiceStub(channels["identity"]),
        )

    async def readiness(self, timeout: float) -> dict[str, str]:
        """The health status of every service, `SERVING` or the reason it is not."""

        async def check(channel: grpc.aio.Channel) -> str:
            stub: Any = health_pb2_grpc.HealthStub(channel)  # the typeshed stub lacks the methods
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
                return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.aio.AioRpcError as exc:
                return f"UNREACHABLE ({exc.code().name})"

        names = list(self.channels)
        results = await asyncio.gather(*(check(self.channels[name]) for name in names))
        return dict(zip(names, results, strict=True))

    async def close(self) -> None:
        """Closes every channel."""
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))
