"""Settings of the billing service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import ServiceSettings, secret


@dataclass(frozen=True, kw_only=True)
class BillingSettings(ServiceSettings):
    """Everything the billing service reads from its environment."""

    service_name: str = "billing"
    grpc_port: int = 50052
    metrics_port: int = 9102
    database_url: str = secret()
    plans_file: str = ""
    default_plan: str = "free"
