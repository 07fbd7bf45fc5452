"""Settings of the jobs service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import ServiceSettings, secret


@dataclass(frozen=True, kw_only=True)
class JobsSettings(ServiceSettings):
    """Everything the jobs service reads from its environment."""

    service_name: str = "jobs"
    grpc_port: int = 50053
    metrics_port: int = 9103
    database_url: str = secret()
    redis_url: str = secret()
    presets_dir: str = ""
    billing_addr: str
    inference_addr: str
    dispatch_concurrency: int = 4
    max_running_per_owner: int = 2
    lease_seconds: float = 30.0
    max_attempts: int = 3
    webhook_allowed_hosts: tuple[str, ...] = ()
