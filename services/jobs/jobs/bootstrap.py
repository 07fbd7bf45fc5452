"""The composition root of the jobs service: builds engines, adapters and servicers.

Nothing runs at import time.
"""

from __future__ import annotations

from pathlib import Path

from jobs.adapters.preset_files import BUILTIN_DIR, PresetDirectory
from jobs.adapters.tables import SCHEMA_NAME
from jobs.api.servicer import registration
from jobs.service.presets import PresetService
from jobs.settings import JobsSettings
from servicekit import db, redis
from servicekit.server import ServiceApp


async def build(settings: JobsSettings) -> ServiceApp:
    """Wires the service for `settings`."""
    engine = db.create_engine(settings.database_url, SCHEMA_NAME)
    cache = redis.create_redis(settings.redis_url)
    presets = PresetService(
        PresetDirectory(Path(settings.presets_dir) if settings.presets_dir else BUILTIN_DIR)
    )
    return ServiceApp(
        name=settings.service_name,
        registrations=[registration(presets)],
        dependencies=[db.dependency(engine), redis.dependency(cache)],
        closers=[engine.dispose, cache.aclose],
    )
