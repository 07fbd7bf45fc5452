"""The composition root of the inference service: builds the backend pool, storage and servicers.

Nothing runs at import time.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from inference.adapters import images
from inference.adapters.comfyui.backend import ComfyUIBackend, Tuning
from inference.adapters.drains import MemoryDrains, RedisDrains
from inference.adapters.local_runtime import LocalRuntime
from inference.api.servicer import registration
from inference.domain.backends import BackendState, Kind
from inference.service.backends import Backends
from inference.service.executions import Executions
from inference.service.pool import Member, Pool
from inference.service.ports import DrainFlags, Storage
from inference.service.record import now
from inference.service.validation import Validator
from inference.settings import InferenceSettings
from servicekit import redis
from servicekit.server import Dependency, ServiceApp
from servicekit.storage import LocalStorage, S3Storage

STATE_DIR = Path(".state") / "inference"


def parse_backend_urls(urls: tuple[str, ...]) -> list[tuple[str, str]]:
    """(backend id, URL) pairs from COMFYUI_URLS entries "url" or "id=url"; ids default to comfyui-N."""
    pairs = []
    for index, entry in enumerate(urls):
        backend_id, _, url = entry.rpartition("=") if "=" in entry.split("://")[0] else ("", "", entry)
        pairs.append((backend_id or f"comfyui-{index}", url.rstrip("/")))
    return pairs


def _state_dir(configured: str, leaf: str) -> Path:
    if configured:
        return Path(configured)
    try:
        path = STATE_DIR / leaf
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return Path(tempfile.mkdtemp(prefix=f"inference-{leaf}-"))


def build_storage(settings: InferenceSettings) -> Storage:
    """S3 when a bucket is configured, else a local directory."""
    if settings.storage_s3_bucket:
        return S3Storage.connect(
            settings.storage_s3_bucket,
            settings.storage_s3_endpoint_url,
            settings.storage_s3_region,
            settings.storage_s3_access_key_id,
            settings.storage_s3_secret_access_key,
        )
    return LocalStorage(_state_dir(settings.storage_dir, "storage"))


async def build(settings: InferenceSettings) -> ServiceApp:
    """Wires the service for `settings`."""
    closers: list[Callable[[], Awaitable[object]]] = []
    kind = Kind.COMFYUI
    urls = parse_backend_urls(settings.comfyui_urls)
    if not urls:
        runtime = LocalRuntime(
            _state_dir(settings.runtime_data_dir, "runtime"), settings.runtime_start_timeout_seconds
        )
        urls = [("local", await runtime.start())]
        kind = Kind.LOCAL_RUNTIME
        closers.append(runtime.stop)
    tuning = Tuning(
        lost_grace_seconds=settings.backend_lost_grace_seconds,
        silence_seconds=settings.comfyui_silence_seconds,
    )
    # One client id per replica and backend: ComfyUI routes a prompt's events to the socket of its client id.
    replica = secrets.token_hex(6)
    members = [
        Member(
            ComfyUIBackend(backend_id, url, f"inference-{replica}-{backend_id}", tuning),
            BackendState(backend_id, url, kind, now()),
        )
        for backend_id, url in urls
    ]
    drains: DrainFlags = MemoryDrains()
    dependencies = []
    if settings.redis_url:
        client = redis.create_redis(settings.redis_url)
        drains = RedisDrains(client)
        closers.append(client.aclose)
    pool = Pool(
        members,
        drains,
        max_in_flight=settings.max_in_flight_per_backend,
        probe_interval=settings.probe_interval_seconds,
    )
    storage = build_storage(settings)
    dependencies.append(Dependency("storage", storage.check))
    await pool.start()
    validator = Validator(pool)
    executions = Executions(pool, validator, storage, images.probe)
    closers[:0] = [executions.close, pool.close]
    servicer = registration(executions, validator, Backends(pool))
    return ServiceApp(
        name=settings.service_name,
        registrations=[servicer],
        dependencies=dependencies,
        closers=closers,
    )


__all__ = ["build", "build_storage", "parse_backend_urls"]
