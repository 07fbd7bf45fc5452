"""Settings of the drive-sync service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import ServiceSettings, secret


@dataclass(frozen=True, kw_only=True)
class DriveSyncSettings(ServiceSettings):
    """Everything the drive-sync service reads from its environment."""

    service_name: str = "drive-sync"
    grpc_port: int = 50055
    metrics_port: int = 9105
    database_url: str = secret()
