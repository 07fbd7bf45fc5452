"""The composition root of the inference service: builds the backend pool and servicers.

Nothing runs at import time.
"""

from __future__ import annotations

from inference.api.servicer import registration
from inference.settings import InferenceSettings
from servicekit.server import ServiceApp


async def build(settings: InferenceSettings) -> ServiceApp:
    """Wires the service for `settings`."""
    return ServiceApp(name=settings.service_name, registrations=[registration()])
