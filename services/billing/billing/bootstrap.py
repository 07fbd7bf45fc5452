"""The composition root of the billing service: builds engines, adapters and servicers; nothing runs at import."""

from __future__ import annotations

from servicekit import db
from servicekit.server import ServiceApp

from billing.adapters.tables import SCHEMA_NAME
from billing.api.servicer import registration
from billing.settings import BillingSettings


async def build(settings: BillingSettings) -> ServiceApp:
    """Wires the service for `settings`."""
    engine = db.create_engine(settings.database_url, SCHEMA_NAME)
    return ServiceApp(
        name=settings.service_name,
        registrations=[registration()],
        dependencies=[db.dependency(engine)],
        closers=[engine.dispose],
    )
