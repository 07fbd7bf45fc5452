"""Settings of the identity service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import ServiceSettings, secret


@dataclass(frozen=True, kw_only=True)
class IdentitySettings(ServiceSettings):
    """Everything the identity service reads from its environment."""

    service_name: str = "identity"
    grpc_port: int = 50051
    metrics_port: int = 9101
    database_url: str = secret()
    redis_url: str = secret()
