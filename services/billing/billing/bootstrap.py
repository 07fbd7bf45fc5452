"""The composition root of the billing service: builds engines, adapters and servicers.

Nothing runs at import time.
"""

from __future__ import annotations

from billing.adapters.tables import SCHEMA_NAME
from billing.api.servicer import registration
from billing.settings import BillingSettings
from servicekit import db
from servicekit.server import ServiceApp


async def build(settings: BillingSettings) -> ServiceApp:
    """Wires the service for `settings`."""
    engine = db.create_engine(settings.database_url, SCHEMA_NAME)
    return ServiceApp(
        name=settings.service_name,
        registrations=[registration()],
        dependencies=[db.dependency(engine)],
        closers=[engine.dispose],
    )
