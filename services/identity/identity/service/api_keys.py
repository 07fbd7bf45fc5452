"""Scoped API keys: created and shown once, listed without secrets, revoked, and resolved to a principal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from identity.adapters.store import Conflict, Store
from identity.domain import credentials, names, paging
from identity.domain.models import MAX_ACTIVE_API_KEYS, ApiKey, ApiKeyState, usage_is_stale
from identity.domain.scopes import KEYS_MANAGE, parse_scopes
from identity.service.callers import current_user
from identity.service.ports import Clock, Revocations
from identity.service.users import clean_display_name
from servicekit import auth, errors
from servicekit.context import Principal
from servicekit.logging import get_logger

log = get_logger("identity.api_keys")
TOUCH_EVERY = timedelta(minutes=1)
PREFIX_ATTEMPTS = 3


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key and the full key string, which is returned once."""

    api_key: ApiKey
    key: str = field(repr=False)


def _invalid() -> errors.Unauthenticated:
    return errors.Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")


def _not_found(name: str) -> errors.NotFound:
    return errors.NotFound(
        f"API key {name!r} does not exist", reason="API_KEY_NOT_FOUND", metadata={"name": name}
    )


class ApiKeyService:
    """API keys of users."""

    def __init__(self, store: Store, clock: Clock, revocations: Revocations) -> None:
        self.store = store
        self.clock = clock
        self.revocations = revocations

    def _manager(self) -> tuple[Principal, str]:
        caller, user_id = current_user()
        auth.require_scope(caller, KEYS_MANAGE)
        return caller, user_id

    async def create(
        self, display_name: str, scopes: list[str], expire_time: datetime | None
    ) -> CreatedApiKey:
        """Creates a key for the caller, who must hold keys:manage and every scope it grants."""
        caller, user_id = self._manager()
        return await self.issue(user_id, display_name, scopes, expire_time, caller)

    async def issue(
        self,
        user_id: str,
        display_name: str,
        scopes: list[str],
        expire_time: datetime | None,
        caller: Principal | None = None,
    ) -> CreatedApiKey:
        """Creates a key for `user_id`; `caller` (when a user acts) must hold each scope granted."""
        name = clean_display_name(display_name)
        granted = parse_scopes(scopes)
        now = self.clock.now()
        lacking = sorted(s for s in granted if caller is not None and not caller.has_scope(s))
        if lacking:
            raise errors.PermissionDenied(
                f"a key cannot grant scopes its creator lacks: {', '.join(lacking)}",
                reason="SCOPE_NOT_HELD",
                metadata={"scopes": ",".join(lacking)},
            )
        if expire_time is not None and expire_time <= now:
            raise errors.InvalidArgument(
                "expire_time must be in the future",
                reason="EXPIRE_TIME_IN_PAST",
                violations=(errors.FieldViolation("expire_time", "must be in the future"),),
            )
        async with self.store.transaction() as tx:
            if await tx.count_active_api_keys(user_id, now) >= MAX_ACTIVE_API_KEYS:
                raise errors.ResourceExhausted(
                    f"a user may hold at most {MAX_ACTIVE_API_KEYS} active API keys; revoke one first",
                    reason="API_KEY_LIMIT_REACHED",
                )
            for _ in range(PREFIX_ATTEMPTS):
                fresh = credentials.generate_api_key()
                key = ApiKey(
                    id=names.new_id(),
                    user_id=user_id,
                    display_name=name,
                    prefix=fresh.prefix,
                    scopes=granted,
                    create_time=now,
                    update_time=now,
                    expire_time=expire_time,
                )
                try:
                    await tx.insert_api_key(key, fresh.secret_hash)
                    break
                except Conflict:
                    continue
            else:
                raise errors.Aborted("could not allocate a key prefix; try again", reason="PREFIX_COLLISION")
        log.info(
            "api_key.created", api_key=f"apiKeys/{key.id}", user=f"users/{user_id}", scopes=sorted(granted)
        )
        return CreatedApiKey(api_key=key, key=fresh.full)

    async def page(self, page_size: int, page_token: str, show_inactive: bool) -> tuple[list[ApiKey], str]:
        """A page of the caller's keys, newest first."""
        _, user_id = self._manager()
        size, cursor = paging.page_size(page_size), paging.decode(page_token)
        async with self.store.transaction() as tx:
            found = await tx.list_api_keys(user_id, cursor, size + 1, show_inactive, self.clock.now())
        page = found[:size]
        token = paging.encode(paging.Cursor(page[-1].create_time, page[-1].id)) if len(found) > size else ""
        return page, token

    async def revoke(self, name: str) -> ApiKey:
        """Revokes one of the caller's keys at once; revoking it again returns it unchanged."""
        _, user_id = self._manager()
        key_id = names.parse(name, names.API_KEYS)
        now = self.clock.now()
        async with self.store.transaction() as tx:
            key = await tx.get_api_key(key_id)
            if key is None or key.user_id != user_id:
                raise _not_found(name)
            already = key.revoke_time is not None
            key = await tx.revoke_api_key(key_id, now) or key
        if not already:
            log.info("api_key.revoked", api_key=name, user=f"users/{user_id}")
            await self.revocations.publish("api_key", name, f"users/{user_id}", now, prefix=key.prefix)
        return key

    async def authenticate(self, presented: str) -> Principal:
        """The principal behind a full key (internal); the secret is compared in constant time."""
        auth.require_service()
        parsed = credentials.parse_api_key(presented)
        if parsed is None:
            raise _invalid()
        prefix, secret = parsed
        now = self.clock.now()
        async with self.store.transaction() as tx:
            found = await tx.api_key_by_prefix(prefix)
            if not credentials.matches(secret, found[1] if found else None) or found is None:
                raise _invalid()
            key, _, plan = found
            state = key.state(now)
            if state is ApiKeyState.REVOKED:
                raise errors.Unauthenticated("the API key was revoked", reason="API_KEY_REVOKED")
            if state is ApiKeyState.EXPIRED:
                raise errors.Unauthenticated("the API key has expired", reason="API_KEY_EXPIRED")
            if usage_is_stale(key.last_used_time, now, TOUCH_EVERY):
                await tx.touch_api_key(key.id, now)
        return Principal(
            subject=f"users/{key.user_id}",
            kind=auth.KIND_API_KEY,
            scopes=key.scopes,
            plan=plan,
            credential_id=f"apiKeys/{key.id}",
        )
