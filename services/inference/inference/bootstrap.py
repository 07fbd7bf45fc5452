"""The composition root of the inference service: builds the backend pool and servicers; nothing runs at import."""

from __future__ import annotations

from servicekit.server import ServiceApp

from inference.api.servicer import registration
from inference.settings import InferenceSettings


async def build(settings: InferenceSettings) -> ServiceApp:
    """Wires the service for `settings`."""
    return ServiceApp(name=settings.service_name, registrations=[registration()])
