"""The composition root of the drive-sync service: builds engines, adapters and servicers; nothing runs at import."""

from __future__ import annotations

from servicekit import db
from servicekit.server import ServiceApp

from drive_sync.adapters.tables import SCHEMA_NAME
from drive_sync.api.servicer import registration
from drive_sync.settings import DriveSyncSettings


async def build(settings: DriveSyncSettings) -> ServiceApp:
    """Wires the service for `settings`."""
    engine = db.create_engine(settings.database_url, SCHEMA_NAME)
    return ServiceApp(
        name=settings.service_name,
        registrations=[registration()],
        dependencies=[db.dependency(engine)],
        closers=[engine.dispose],
    )
