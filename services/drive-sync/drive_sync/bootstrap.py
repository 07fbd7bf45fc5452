"""The composition root of the drive-sync service: builds engines, adapters and servicers.

Nothing runs at import time.
"""

from __future__ import annotations

from drive_sync.adapters.tables import SCHEMA_NAME
from drive_sync.api.servicer import registration
from drive_sync.settings import DriveSyncSettings
from servicekit import db
from servicekit.server import ServiceApp


async def build(settings: DriveSyncSettings) -> ServiceApp:
    """Wires the service for `settings`."""
    engine = db.create_engine(settings.database_url, SCHEMA_NAME)
    return ServiceApp(
        name=settings.service_name,
        registrations=[registration()],
        dependencies=[db.dependency(engine)],
        closers=[engine.dispose],
    )
