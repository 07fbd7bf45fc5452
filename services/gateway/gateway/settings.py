"""Settings of the gateway, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    """Everything the HTTP edge reads from its environment."""

    service_name: str = "gateway"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "info"
    log_format: str = "json"
    shutdown_grace_seconds: float = 20.0
    identity_addr: str
    billing_addr: str
    jobs_addr: str
    inference_addr: str
    drive_sync_addr: str
    backend_timeout_seconds: float = 10.0
    readiness_timeout_seconds: float = 2.0
