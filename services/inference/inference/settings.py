"""Settings of the inference service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import ServiceSettings


@dataclass(frozen=True, kw_only=True)
class InferenceSettings(ServiceSettings):
    """Everything the inference service reads from its environment."""

    service_name: str = "inference"
    grpc_port: int = 50054
    metrics_port: int = 9104
