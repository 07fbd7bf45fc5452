"""The composition root of the identity service: builds engines, adapters, use cases and servicers.

Nothing runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from identity.adapters.events import RedisRevocations
from identity.adapters.oidc import GoogleOpenId
from identity.adapters.store import Store
from identity.adapters.tables import SCHEMA_NAME
from identity.api.servicer import Services, registration
from identity.domain.models import SessionPolicy
from identity.service.api_keys import ApiKeyService
from identity.service.ports import SystemClock
from identity.service.sessions import SessionService
from identity.service.signin import SignInPolicy, SignInService
from identity.service.users import UserService
from identity.service.vault import VaultService
from identity.settings import IdentitySettings
from servicekit import db, errors, redis
from servicekit.logging import get_logger
from servicekit.sealing import KeyRingError, Sealer, parse_key_ring
from servicekit.server import ServiceApp
from servicekit.settings import SettingsError

log = get_logger("identity.bootstrap")


@dataclass
class Components:
    """Everything the service (or one of its commands) runs on, with what must be closed afterwards."""

    services: Services
    engine: AsyncEngine
    cache: Redis
    http: httpx.AsyncClient

    async def close(self) -> None:
        """Closes pools and clients."""
        await self.http.aclose()
        await self.cache.aclose()
        await self.engine.dispose()


def _cipher(settings: IdentitySettings) -> Sealer | None:
    try:
        ring = parse_key_ring(
            settings.vault_keys,
            settings.vault_active_key,
            keys_setting="VAULT_KEYS",
            active_setting="VAULT_ACTIVE_KEY",
            reason_prefix="VAULT",
        )
    except KeyRingError as exc:
        raise SettingsError(f"IdentitySettings: {exc}") from None
    if ring is None:
        log.warning("vault.disabled", why="VAULT_KEYS is not set")
        return None
    return Sealer(ring)


def _provider(settings: IdentitySettings, http: httpx.AsyncClient) -> GoogleOpenId | None:
    if not settings.google_client_id or not settings.google_client_secret:
        log.warning("signin.disabled", why="GOOGLE_CLIENT_ID or GOOGLE_CLIENT_SECRET is not set")
        return None
    return GoogleOpenId(
        http,
        issuer=settings.google_issuer,
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret,
        token_uri=settings.google_token_uri,
        revocation_uri=settings.google_revocation_uri,
    )


def components(settings: IdentitySettings) -> Components:
    """Wires adapters and use cases for `settings`."""
    cipher = _cipher(settings)
    engine = db.create_engine(settings.database_url, SCHEMA_NAME)
    cache = redis.create_redis(settings.redis_url)
    http = httpx.AsyncClient(timeout=settings.google_timeout_seconds, follow_redirects=False)
    provider = _provider(settings, http)
    store, clock, revocations = Store(engine), SystemClock(), RedisRevocations(cache)
    policy = SessionPolicy(
        idle=timedelta(seconds=settings.session_idle_seconds),
        absolute=timedelta(seconds=settings.session_absolute_seconds),
    )
    users = UserService(store, clock, revocations)
    sessions = SessionService(store, clock, revocations, policy)
    signin_policy = SignInPolicy(
        redirect_uris=settings.google_redirect_uris,
        allowed_domains=settings.google_allowed_domains,
        state_lifetime=timedelta(seconds=settings.oauth_state_seconds),
    )
    services = Services(
        clock=clock,
        users=users,
        signin=SignInService(store, clock, provider, signin_policy, users, sessions),
        sessions=sessions,
        api_keys=ApiKeyService(store, clock, revocations),
        vault=VaultService(store, clock, cipher, provider),
        cache_ttl=timedelta(seconds=settings.auth_cache_ttl_seconds),
    )
    return Components(services=services, engine=engine, cache=cache, http=http)


async def _relay(vault: VaultService, interval: float) -> None:
    """Sends the outbox (provider revocations) until cancelled; failures wait for the next round."""
    while True:
        try:
            await vault.relay_once()
        except errors.DomainError as exc:
            log.warning("outbox.relay_failed", reason=exc.reason)
        except Exception:
            log.exception("outbox.relay_crashed")
        await asyncio.sleep(interval)


async def build(settings: IdentitySettings) -> ServiceApp:
    """Wires the service for `settings` and starts its outbox relay."""
    parts = components(settings)
    relay = asyncio.create_task(_relay(parts.services.vault, settings.outbox_interval_seconds), name="outbox")

    async def stop_relay() -> None:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay

    return ServiceApp(
        name=settings.service_name,
        registrations=[registration(parts.services)],
        dependencies=[db.dependency(parts.engine), redis.dependency(parts.cache)],
        closers=[stop_relay, parts.close],
    )
