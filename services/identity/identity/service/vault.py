"""The token vault: refresh tokens sealed at rest, fresh access tokens on demand, revocation and key rotation.

Refresh and access tokens are sealed with the cipher (AES-GCM under the active versioned key), each bound to
its grant and purpose. An access token is cached, sealed, in the grant row until shortly before it expires,
so every replica shares it. A provider's `invalid_grant` marks the grant revoked. Revocation at the provider
goes through the outbox, so a provider outage delays it without losing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from identity.adapters.store import SealedGrant, Store, Tx
from identity.domain import names, paging
from identity.domain.models import AccessToken, Grant, GrantState, Provider, RevokeReason
from identity.domain.scopes import DRIVE_MANAGE
from identity.service.callers import caller_user_id, current_user, user_not_found
from identity.service.ports import Cipher, Clock, GrantRejected, OpenIdProvider
from identity.service.users import GRANT_REVOCATION
from servicekit import auth, errors
from servicekit.logging import get_logger

log = get_logger("identity.vault")
DEFAULT_MIN_TTL = timedelta(minutes=5)
MAX_MIN_TTL = timedelta(minutes=30)
RELAY_BATCH = 20
ROTATION_BATCH = 100


def refresh_binding(grant_id: str) -> str:
    """What a grant's sealed refresh token is bound to."""
    return f"grants/{grant_id}/refresh_token"


def access_binding(grant_id: str) -> str:
    """What a grant's sealed access token is bound to."""
    return f"grants/{grant_id}/access_token"


def _not_found(name: str) -> errors.NotFound:
    return errors.NotFound(
        f"grant {name!r} does not exist", reason="GRANT_NOT_FOUND", metadata={"name": name}
    )


def _revoked(grant: Grant) -> errors.FailedPrecondition:
    return errors.FailedPrecondition(
        "the Google grant was revoked; the user must connect Google again",
        reason="GRANT_REVOKED",
        metadata={"grant": f"grants/{grant.id}"},
    )


def provider_of(value: Provider | None) -> Provider:
    """A required provider."""
    if value is None:
        raise errors.InvalidArgument(
            "provider is required",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation("provider", "required"),),
        )
    return value


@dataclass(frozen=True)
class Rotation:
    """What a key rotation did."""

    examined: int
    resealed: int
    active_version: str


class VaultService:
    """Grants of users; disabled (VAULT_NOT_CONFIGURED) without vault keys."""

    def __init__(
        self, store: Store, clock: Clock, cipher: Cipher | None, provider: OpenIdProvider | None
    ) -> None:
        self.store = store
        self.clock = clock
        self.cipher = cipher
        self.provider = provider

    def _sealer(self) -> Cipher:
        if self.cipher is None:
            raise errors.FailedPrecondition(
                "the token vault is not configured: set VAULT_KEYS (and VAULT_ACTIVE_KEY) on identity",
                reason="VAULT_NOT_CONFIGURED",
            )
        return self.cipher

    def _refresher(self) -> OpenIdProvider:
        if self.provider is None:
            raise errors.FailedPrecondition(
                "Google is not configured: set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET on identity",
                reason="GOOGLE_NOT_CONFIGURED",
            )
        return self.provider

    async def store_grant(
        self,
        owner: str,
        provider: Provider | None,
        refresh_token: str,
        scopes: list[str],
        account: tuple[str, str],
        request_id: str,
    ) -> Grant:
        """Seals and stores a refresh token for `owner`, replacing their earlier grant (internal)."""
        auth.require_service()
        cipher = self._sealer()
        owner_id = names.parse(owner, names.USERS, "owner")
        kind = provider_of(provider)
        key = names.request_id(request_id)
        if not refresh_token:
            raise errors.InvalidArgument(
                "refresh_token is required",
                reason="REFRESH_TOKEN_MISSING",
                violations=(errors.FieldViolation("refresh_token", "required"),),
            )
        granted = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
        if not granted:
            raise errors.InvalidArgument(
                "scopes are required",
                reason="FIELD_INVALID",
                violations=(errors.FieldViolation("scopes", "required"),),
            )
        now = self.clock.now()
        async with self.store.transaction() as tx:
            if await tx.get_user(owner_id, lock=True) is None:
                raise user_not_found(owner)
            earlier = await tx.grant_by_request(owner_id, key)
            if earlier is not None:
                return earlier
            for replaced in await tx.revoke_grants(
                RevokeReason.REPLACED, now, owner_id=owner_id, provider=kind.value
            ):
                # Revoking at Google would end the user's whole consent, the new grant's too: just forget it.
                await tx.wipe_refresh_token(replaced.id)
            grant = Grant(
                id=names.new_id(),
                owner_id=owner_id,
                provider=kind,
                scopes=granted,
                account_subject=account[0],
                account_email=account[1],
                state=GrantState.ACTIVE,
                create_time=now,
                update_time=now,
            )
            await tx.insert_grant(grant, key, cipher.seal(refresh_token, refresh_binding(grant.id)))
        log.info("grant.stored", grant=f"grants/{grant.id}", owner=owner, provider=kind.value)
        return grant

    async def _visible(self, tx: Tx, name: str) -> Grant:
        """A grant the caller may see: any for a service, their own (with drive:manage) for a user."""
        caller = auth.require_principal()
        grant = await tx.get_grant(names.parse(name, names.GRANTS))
        if grant is None:
            raise _not_found(name)
        if not auth.is_service(caller):
            auth.require_scope(caller, DRIVE_MANAGE)
            if grant.owner_id != caller_user_id(caller):
                raise _not_found(name)
        return grant

    async def get(self, name: str) -> Grant:
        """One grant's metadata."""
        async with self.store.transaction() as tx:
            return await self._visible(tx, name)

    async def page(self, page_size: int, page_token: str) -> tuple[list[Grant], str]:
        """A page of the caller's grants, newest first."""
        caller, user_id = current_user()
        auth.require_scope(caller, DRIVE_MANAGE)
        size, cursor = paging.page_size(page_size), paging.decode(page_token)
        async with self.store.transaction() as tx:
            found = await tx.list_grants(user_id, cursor, size + 1)
        page = found[:size]
        token = paging.encode(paging.Cursor(page[-1].create_time, page[-1].id)) if len(found) > size else ""
        return page, token

    async def revoke(self, name: str, request_id: str) -> Grant:
        """Revokes a grant here and, through the outbox, at the provider; repeating is harmless."""
        auth.require_principal()
        names.request_id(request_id)
        now = self.clock.now()
        async with self.store.transaction() as tx:
            grant = await self._visible(tx, name)
            if grant.state is GrantState.REVOKED:
                return grant
            (grant,) = await tx.revoke_grants(RevokeReason.USER_REQUESTED, now, grant_id=grant.id)
            await tx.enqueue(GRANT_REVOCATION, {"grant": grant.id}, now)
        log.info("grant.revoked", grant=name, reason=RevokeReason.USER_REQUESTED.value)
        return grant

    async def access_token(
        self, owner: str, provider: Provider | None, min_ttl: timedelta | None
    ) -> AccessToken:
        """A usable access token of the owner's active grant, refreshed when the cached one ends too soon."""
        auth.require_service()
        cipher = self._sealer()
        owner_id = names.parse(owner, names.USERS, "owner")
        kind = provider_of(provider)
        wanted = min(min_ttl if min_ttl and min_ttl > timedelta(0) else DEFAULT_MIN_TTL, MAX_MIN_TTL)
        async with self.store.transaction() as tx:
            sealed = await tx.sealed_grant(owner_id, kind)
        cached = self._cached(cipher, sealed, wanted) if sealed else None
        if cached is not None:
            return cached
        return await self._refreshed(cipher, owner_id, kind, wanted)

    def _cached(self, cipher: Cipher, sealed: SealedGrant, wanted: timedelta) -> AccessToken | None:
        if sealed.access_token is None or sealed.access_token_expire_time is None:
            return None
        token = AccessToken(
            token=cipher.open(sealed.access_token, access_binding(sealed.grant.id)),
            expire_time=sealed.access_token_expire_time,
            scopes=sealed.grant.scopes,
            grant_id=sealed.grant.id,
        )
        return token if token.lasts(self.clock.now(), wanted) else None

    async def _refreshed(
        self, cipher: Cipher, owner_id: str, kind: Provider, wanted: timedelta
    ) -> AccessToken:
        """Refreshes under the grant's row lock, so concurrent callers share one refresh."""
        refresher = self._refresher()
        rejected: Grant | None = None
        async with self.store.transaction() as tx:
            sealed = await tx.sealed_grant(owner_id, kind, lock=True)
            if sealed is None:
                latest = await tx.latest_grant(owner_id, kind)
                if latest is not None and latest.state is GrantState.REVOKED:
                    raise _revoked(latest)
                raise _not_found(f"the active {kind.value} grant of users/{owner_id}")
            cached = self._cached(cipher, sealed, wanted)
            if cached is not None:
                return cached
            grant = sealed.grant
            if sealed.refresh_token is None:
                raise _revoked(grant)
            try:
                fresh = await refresher.refresh(cipher.open(sealed.refresh_token, refresh_binding(grant.id)))
            except GrantRejected:
                now = self.clock.now()
                (rejected,) = await tx.revoke_grants(RevokeReason.PROVIDER_REVOKED, now, grant_id=grant.id)
                await tx.wipe_refresh_token(grant.id)
            else:
                now = self.clock.now()
                expire = now + timedelta(seconds=max(fresh.expires_in, 0))
                rotated = (
                    cipher.seal(fresh.refresh_token, refresh_binding(grant.id))
                    if fresh.refresh_token
                    else None
                )
                await tx.save_access_token(
                    grant.id, cipher.seal(fresh.access_token, access_binding(grant.id)), expire, rotated, now
                )
        if rejected is not None:
            log.warning(
                "grant.revoked", grant=f"grants/{rejected.id}", reason=RevokeReason.PROVIDER_REVOKED.value
            )
            raise _revoked(rejected)
        log.info("grant.refreshed", grant=f"grants/{grant.id}", expires_in=fresh.expires_in)
        return AccessToken(
            token=fresh.access_token,
            expire_time=expire,
            scopes=fresh.scopes or grant.scopes,
            grant_id=grant.id,
        )

    async def rotate_keys(self) -> Rotation:
        """Re-seals every envelope not under the active key, in batches, each batch in its own transaction."""
        cipher = self._sealer()
        examined = resealed = 0
        after = ""
        while True:
            async with self.store.transaction() as tx:
                batch = await tx.sealed_values_after(
                    after or "00000000-0000-0000-0000-000000000000", ROTATION_BATCH
                )
                for grant_id, refresh, access in batch:
                    examined += 1
                    if not any(v is not None and cipher.needs_reseal(v) for v in (refresh, access)):
                        continue
                    await tx.reseal(
                        grant_id,
                        self._reseal(cipher, refresh, refresh_binding(grant_id)),
                        self._reseal(cipher, access, access_binding(grant_id)),
                    )
                    resealed += 1
            if len(batch) < ROTATION_BATCH:
                break
            after = batch[-1][0]
        log.info("vault.rotated", examined=examined, resealed=resealed, active_version=cipher.active_version)
        return Rotation(examined=examined, resealed=resealed, active_version=cipher.active_version)

    @staticmethod
    def _reseal(cipher: Cipher, envelope: str | None, binding: str) -> str | None:
        if envelope is None or not cipher.needs_reseal(envelope):
            return envelope
        return cipher.seal(cipher.open(envelope, binding), binding)

    async def relay_once(self) -> int:
        """Sends due outbox messages (provider revocations); returns how many were handled."""
        now = self.clock.now()
        handled = 0
        async with self.store.transaction() as tx:
            for message in await tx.due_messages(now, RELAY_BATCH):
                try:
                    await self._send(tx, str(message.payload.get("grant", "")))
                except errors.DomainError as exc:
                    delay = timedelta(seconds=min(3600, 5 * 2 ** min(message.attempts, 10)))
                    await tx.message_failed(message.id, now + delay, exc.reason)
                    log.warning(
                        "outbox.retry", kind=message.kind, attempts=message.attempts + 1, reason=exc.reason
                    )
                    continue
                await tx.message_done(message.id, now)
                handled += 1
        return handled

    async def _send(self, tx: Tx, grant_id: str) -> None:
        """Revokes a grant's refresh token at the provider, then forgets it."""
        sealed = await tx.refresh_token_of(grant_id) if grant_id else None
        if sealed is not None and self.cipher is not None and self.provider is not None:
            told = await self.provider.revoke(self.cipher.open(sealed, refresh_binding(grant_id)))
            log.info(
                "grant.provider_revoked" if told else "grant.provider_has_no_revocation",
                grant=f"grants/{grant_id}",
            )
        await tx.wipe_refresh_token(grant_id)
