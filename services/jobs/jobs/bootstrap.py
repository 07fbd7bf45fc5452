"""The composition root of the jobs service: builds engines, adapters, use cases and servicers.

Nothing runs at import time; the dispatcher, the reaper and the outbox relay start with the server.
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import timedelta
from pathlib import Path

from jobs.adapters.billing_grpc import GrpcBilling
from jobs.adapters.inference_grpc import GrpcInference
from jobs.adapters.job_store import SqlJobStore
from jobs.adapters.live_redis import RedisLive
from jobs.adapters.preset_files import BUILTIN_DIR, PresetDirectory
from jobs.adapters.queue_sql import SqlOutbox, SqlQueue
from jobs.adapters.tables import SCHEMA_NAME
from jobs.adapters.webhook_http import HttpPoster
from jobs.adapters.webhook_store import SqlWebhookStore
from jobs.api.convert import render_event
from jobs.api.servicer import registration
from jobs.domain.effects import WEBHOOK
from jobs.domain.jobs import RetryPolicy
from jobs.service.admission import Admission
from jobs.service.dispatch import Dispatcher, DispatchSettings
from jobs.service.jobs import Jobs
from jobs.service.maintenance import Reaper, Relay, usage_handlers
from jobs.service.presets import PresetService
from jobs.service.validation import CachedValidator
from jobs.service.webhooks import Sender, SenderSettings, Webhooks, WebhookSecrets
from jobs.settings import JobsSettings
from servicekit import db, redis
from servicekit.channels import open_channel
from servicekit.sealing import Sealer, parse_key_ring
from servicekit.server import ServiceApp


class JobsStore(SqlJobStore, SqlQueue):
    """The jobs table with both its admission/read side and its queue side."""


async def build(settings: JobsSettings) -> ServiceApp:
    """Wires the service for `settings`."""
    engine = db.create_engine(settings.database_url, SCHEMA_NAME)
    cache = redis.create_redis(settings.redis_url)
    billing_channel, inference_channel = (
        open_channel(settings.billing_addr),
        open_channel(settings.inference_addr),
    )
    outbox_written = asyncio.Event()  # wakes the relay as soon as this replica commits outbox messages
    store, live = JobsStore(engine, outbox_written.set), RedisLive(cache)
    billing, inference = GrpcBilling(billing_channel), GrpcInference(inference_channel)
    presets = PresetService(
        PresetDirectory(Path(settings.presets_dir) if settings.presets_dir else BUILTIN_DIR)
    )
    allowed_hosts = frozenset(h.lower() for h in settings.webhook_allowed_hosts)
    ring = parse_key_ring(
        settings.webhook_secret_keys,
        settings.webhook_secret_active_key,
        keys_setting="WEBHOOK_SECRET_KEYS",
        active_setting="WEBHOOK_SECRET_ACTIVE_KEY",
        reason_prefix="WEBHOOK_SECRET",
    )
    hooks_store = SqlWebhookStore(engine)
    secrets = WebhookSecrets(hooks_store, Sealer(ring) if ring else None)
    webhooks = Webhooks(
        hooks_store, store, render_event, allowed_hosts, settings.webhook_redeliveries_per_hour
    )
    poster = HttpPoster(allowed_hosts, settings.webhook_timeout_seconds)
    sender = Sender(
        hooks_store,
        secrets,
        poster,
        webhooks.wake,
        SenderSettings(
            schedule=tuple(float(d) for d in settings.webhook_retry_delays),
            concurrency=settings.webhook_concurrency,
            hold_seconds=max(60.0, 3 * settings.webhook_timeout_seconds),
        ),
    )
    admission = Admission(
        store,
        presets,
        CachedValidator(inference, settings.validation_cache_seconds),
        billing,
        live,
        allowed_hosts,
        has_webhook_secret=secrets.configured,
    )
    jobs = Jobs(store, live, inference.cancel)
    dispatcher = Dispatcher(
        store,
        inference,
        live,
        DispatchSettings(
            worker=f"{socket.gethostname()}:{os.getpid()}",
            concurrency=settings.dispatch_concurrency,
            per_owner_cap=settings.max_running_per_owner,
            lease_seconds=settings.lease_seconds,
            retry=RetryPolicy(max_attempts=settings.max_attempts),
        ),
    )
    reaper = Reaper(store, live, abandoned_after=timedelta(seconds=settings.admission_abandon_seconds))
    relay = Relay(
        SqlOutbox(engine), {**usage_handlers(billing), WEBHOOK: webhooks.record_event}, outbox_written
    )
    return ServiceApp(
        name=settings.service_name,
        registrations=[registration(presets, admission, jobs, webhooks, secrets)],
        dependencies=[db.dependency(engine), redis.dependency(cache)],
        closers=[
            engine.dispose,
            live.aclose,
            cache.aclose,
            billing_channel.close,
            inference_channel.close,
            poster.aclose,
        ],
        background=[dispatcher.run, reaper.run, relay.run, sender.run],
    )
