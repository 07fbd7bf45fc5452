"""The composition root of the identity service: builds engines, adapters and servicers.

Nothing runs at import time.
"""

from __future__ import annotations

from identity.adapters.tables import SCHEMA_NAME
from identity.api.servicer import registration
from identity.settings import IdentitySettings
from servicekit import db, redis
from servicekit.server import ServiceApp


async def build(settings: IdentitySettings) -> ServiceApp:
    """Wires the service for `settings`."""
    engine = db.create_engine(settings.database_url, SCHEMA_NAME)
    cache = redis.create_redis(settings.redis_url)
    return ServiceApp(
        name=settings.service_name,
        registrations=[registration()],
        dependencies=[db.dependency(engine), redis.dependency(cache)],
        closers=[engine.dispose, cache.aclose],
    )
