"""PostgreSQL storage of the identity schema: one `Tx` per unit of work, mapping rows to domain values.

Database failures end here: a lost connection becomes UNAVAILABLE DATABASE_UNAVAILABLE with a retry hint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from identity.adapters.tables import api_keys, grants, oauth_states, outbox, sessions, users
from identity.domain.models import (
    ApiKey,
    DeletionCounts,
    Grant,
    GrantState,
    Provider,
    RevokeReason,
    Session,
    User,
)
from identity.domain.paging import Cursor
from servicekit import errors

Row = Any


class Conflict(Exception):
    """A unique constraint refused a write; the caller decides what that means."""


@dataclass(frozen=True)
class StoredState:
    """A sign-in attempt as kept between BeginGoogleSignIn and CompleteGoogleSignIn."""

    nonce: str
    code_verifier: str
    redirect_uri: str
    return_path: str
    expire_time: datetime
    use_time: datetime | None


@dataclass(frozen=True)
class SealedGrant:
    """A grant with its vault envelopes, as the vault use cases need it."""

    grant: Grant
    refresh_token: str | None
    access_token: str | None
    access_token_expire_time: datetime | None


@dataclass(frozen=True)
class OutboxMessage:
    """A side effect waiting to be sent."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


class Store:
    """Opens units of work on the identity schema."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A transaction committed when the block ends normally and rolled back when it raises."""
        try:
            async with self.engine.begin() as connection:
                yield Tx(connection)
        except (OperationalError, InterfaceError, OSError) as exc:
            raise errors.Unavailable(
                "the identity database is unavailable", reason="DATABASE_UNAVAILABLE", retry_after=1.0
            ) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise errors.Unavailable(
                    "the identity database is unavailable", reason="DATABASE_UNAVAILABLE", retry_after=1.0
                ) from exc
            raise


def _user(row: Row) -> User:
    return User(
        id=row.id,
        email=row.email,
        display_name=row.display_name,
        picture_uri=row.picture_uri,
        google_subject=row.google_subject,
        plan_id=row.plan_id,
        plan_revision=row.plan_revision,
        create_time=row.create_time,
        update_time=row.update_time,
        last_sign_in_time=row.last_sign_in_time,
    )


def _api_key(row: Row) -> ApiKey:
    return ApiKey(
        id=row.id,
        user_id=row.user_id,
        display_name=row.display_name,
        prefix=row.prefix,
        scopes=frozenset(row.scopes),
        create_time=row.create_time,
        update_time=row.update_time,
        last_used_time=row.last_used_time,
        expire_time=row.expire_time,
        revoke_time=row.revoke_time,
    )


def _session(row: Row) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        user_agent=row.user_agent,
        client_ip=row.client_ip,
        create_time=row.create_time,
        update_time=row.update_time,
        last_used_time=row.last_used_time,
        expire_time=row.expire_time,
        absolute_expire_time=row.absolute_expire_time,
        revoke_time=row.revoke_time,
    )


def _grant(row: Row) -> Grant:
    return Grant(
        id=row.id,
        owner_id=row.owner_id,
        provider=Provider(row.provider),
        scopes=tuple(row.scopes),
        account_subject=row.account_subject,
        account_email=row.account_email,
        state=GrantState(row.state),
        revoke_reason=RevokeReason(row.revoke_reason) if row.revoke_reason else None,
        create_time=row.create_time,
        update_time=row.update_time,
        last_refresh_time=row.last_refresh_time,
        revoke_time=row.revoke_time,
    )


def _after(table: Any, owner_column: Any, owner: str, cursor: Cursor | None) -> Any:
    """Rows of `owner` after `cursor` in newest-first order."""
    condition = owner_column == owner
    if cursor is not None:
        condition = and_(
            condition,
            tuple_(table.c.create_time, table.c.id)
            < tuple_(cursor.create_time, literal(cursor.id, type_=table.c.id.type)),
        )
    return condition


class Tx:
    """The queries of one unit of work."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def _one(self, statement: Any) -> Row | None:
        return (await self.connection.execute(statement)).first()

    async def _all(self, statement: Any) -> Sequence[Row]:
        return (await self.connection.execute(statement)).all()

    # Users.

    async def get_user(self, user_id: str, *, lock: bool = False) -> User | None:
        """A live (not deleted) user."""
        statement = select(users).where(users.c.id == user_id, users.c.delete_time.is_(None))
        row = await self._one(statement.with_for_update() if lock else statement)
        return _user(row) if row else None

    async def user_by_subject(self, subject: str) -> User | None:
        """The live user linked to a Google subject."""
        row = await self._one(
            select(users).where(users.c.google_subject == subject, users.c.delete_time.is_(None))
        )
        return _user(row) if row else None

    async def user_by_email(self, email: str) -> User | None:
        """The live user with this (lower-cased) email."""
        row = await self._one(select(users).where(users.c.email == email, users.c.delete_time.is_(None)))
        return _user(row) if row else None

    async def insert_user(self, user: User) -> None:
        """Stores a new user; Conflict when its email or Google subject is taken (a concurrent sign-in)."""
        try:
            async with self.connection.begin_nested():
                await self.connection.execute(
                    users.insert().values(
                        id=user.id,
                        google_subject=user.google_subject,
                        email=user.email,
                        display_name=user.display_name,
                        picture_uri=user.picture_uri,
                        plan_id=user.plan_id,
                        plan_revision=user.plan_revision,
                        create_time=user.create_time,
                        update_time=user.update_time,
                        last_sign_in_time=user.last_sign_in_time,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    async def save_user(self, user: User) -> None:
        """Writes a user's mutable fields."""
        await self.connection.execute(
            update(users)
            .where(users.c.id == user.id)
            .values(
                google_subject=user.google_subject,
                email=user.email,
                display_name=user.display_name,
                picture_uri=user.picture_uri,
                plan_id=user.plan_id,
                plan_revision=user.plan_revision,
                update_time=user.update_time,
                last_sign_in_time=user.last_sign_in_time,
            )
        )

    async def mark_user_deleted(
        self, user_id: str, now: datetime, request_id: str, counts: DeletionCounts
    ) -> None:
        """Deletes an account: personal data is erased, the row stays for the records that point at it."""
        await self.connection.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(
                google_subject=None,
                email="",
                display_name="",
                picture_uri="",
                delete_time=now,
                update_time=now,
                delete_request_id=request_id,
                delete_counts={
                    "api_keys": counts.api_keys,
                    "sessions": counts.sessions,
                    "grants": counts.grants,
                },
            )
        )

    async def deletion_of(self, user_id: str) -> tuple[str, DeletionCounts] | None:
        """The request id and result of an account deletion, to answer its retries."""
        row = await self._one(
            select(users.c.delete_request_id, users.c.delete_counts).where(
                users.c.id == user_id, users.c.delete_time.is_not(None)
            )
        )
        if row is None:
            return None
        counts = row.delete_counts or {}
        return row.delete_request_id or "", DeletionCounts(
            api_keys=int(counts.get("api_keys", 0)),
            sessions=int(counts.get("sessions", 0)),
            grants=int(counts.get("grants", 0)),
        )

    # API keys.

    async def insert_api_key(self, key: ApiKey, secret_hash: bytes) -> None:
        """Stores a new key; Conflict when its prefix is taken (astronomically rare; the caller retries)."""
        try:
            async with self.connection.begin_nested():
                await self.connection.execute(
                    api_keys.insert().values(
                        id=key.id,
                        user_id=key.user_id,
                        prefix=key.prefix,
                        secret_hash=secret_hash,
                        display_name=key.display_name,
                        scopes=sorted(key.scopes),
                        create_time=key.create_time,
                        update_time=key.update_time,
                        expire_time=key.expire_time,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    def _active_keys(self, now: datetime) -> Any:
        return and_(
            api_keys.c.revoke_time.is_(None),
            or_(api_keys.c.expire_time.is_(None), api_keys.c.expire_time > now),
        )

    async def count_active_api_keys(self, user_id: str, now: datetime) -> int:
        """How many usable keys a user has."""
        row = await self._one(
            select(func.count())
            .select_from(api_keys)
            .where(api_keys.c.user_id == user_id, self._active_keys(now))
        )
        return int(row[0]) if row else 0

    async def list_api_keys(
        self, user_id: str, cursor: Cursor | None, limit: int, show_inactive: bool, now: datetime
    ) -> list[ApiKey]:
        """A page of a user's keys, newest first."""
        condition = _after(api_keys, api_keys.c.user_id, user_id, cursor)
        if not show_inactive:
            condition = and_(condition, self._active_keys(now))
        rows = await self._all(
            select(api_keys)
            .where(condition)
            .order_by(api_keys.c.create_time.desc(), api_keys.c.id.desc())
            .limit(limit)
        )
        return [_api_key(row) for row in rows]

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """One key by id."""
        row = await self._one(select(api_keys).where(api_keys.c.id == key_id))
        return _api_key(row) if row else None

    async def api_key_by_prefix(self, prefix: str) -> tuple[ApiKey, bytes, str] | None:
        """A key by its public prefix, with its stored hash and the owner's plan (live owners only)."""
        row = await self._one(
            select(api_keys, users.c.plan_id.label("owner_plan"))
            .join(users, users.c.id == api_keys.c.user_id)
            .where(api_keys.c.prefix == prefix, users.c.delete_time.is_(None))
        )
        return (_api_key(row), bytes(row.secret_hash), row.owner_plan) if row else None

    async def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey | None:
        """Revokes a key unless it already is; returns it as it is afterwards."""
        await self.connection.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoke_time.is_(None))
            .values(revoke_time=now, update_time=now)
        )
        return await self.get_api_key(key_id)

    async def touch_api_key(self, key_id: str, now: datetime) -> None:
        """Records a use of a key."""
        await self.connection.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(last_used_time=now)
        )

    async def revoke_user_api_keys(self, user_id: str, now: datetime) -> list[ApiKey]:
        """Revokes every unrevoked key of a user; returns those it revoked."""
        rows = await self._all(
            update(api_keys)
            .where(api_keys.c.user_id == user_id, api_keys.c.revoke_time.is_(None))
            .values(revoke_time=now, update_time=now)
            .returning(*api_keys.c)
        )
        return [_api_key(row) for row in rows]

    # Sessions.

    async def insert_session(self, session: Session, token_hash: bytes, csrf_token: str) -> None:
        """Stores a new session."""
        await self.connection.execute(
            sessions.insert().values(
                id=session.id,
                user_id=session.user_id,
                token_hash=token_hash,
                csrf_token=csrf_token,
                user_agent=session.user_agent,
                client_ip=session.client_ip,
                create_time=session.create_time,
                update_time=session.update_time,
                last_used_time=session.last_used_time,
                expire_time=session.expire_time,
                absolute_expire_time=session.absolute_expire_time,
            )
        )

    async def session_by_token_hash(self, token_hash: bytes) -> tuple[Session, str, str] | None:
        """A session by its token's hash, with its CSRF token and the owner's plan (live owners only)."""
        row = await self._one(
            select(sessions, users.c.plan_id.label("owner_plan"))
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.token_hash == token_hash, users.c.delete_time.is_(None))
        )
        return (_session(row), row.csrf_token, row.owner_plan) if row else None

    async def touch_session(self, session_id: str, now: datetime, expire_time: datetime) -> None:
        """Records a use of a session and its extended expiry."""
        await self.connection.execute(
            update(sessions)
            .where(sessions.c.id == session_id)
            .values(last_used_time=now, expire_time=expire_time, update_time=now)
        )

    async def list_sessions(
        self, user_id: str, cursor: Cursor | None, limit: int, now: datetime
    ) -> list[Session]:
        """A page of a user's active sessions, newest first."""
        rows = await self._all(
            select(sessions)
            .where(
                _after(sessions, sessions.c.user_id, user_id, cursor),
                sessions.c.revoke_time.is_(None),
                sessions.c.expire_time > now,
                sessions.c.absolute_expire_time > now,
            )
            .order_by(sessions.c.create_time.desc(), sessions.c.id.desc())
            .limit(limit)
        )
        return [_session(row) for row in rows]

    async def get_session(self, session_id: str) -> Session | None:
        """One session by id."""
        row = await self._one(select(sessions).where(sessions.c.id == session_id))
        return _session(row) if row else None

    async def revoke_sessions(
        self, user_id: str, now: datetime, *, only: str = "", keep: str = ""
    ) -> list[str]:
        """Revokes a user's unrevoked sessions (just `only` when given, all but `keep` when given)."""
        condition = and_(sessions.c.user_id == user_id, sessions.c.revoke_time.is_(None))
        if only:
            condition = and_(condition, sessions.c.id == only)
        if keep:
            condition = and_(condition, sessions.c.id != keep)
        rows = await self._all(
            update(sessions)
            .where(condition)
            .values(revoke_time=now, update_time=now)
            .returning(sessions.c.id)
        )
        return [str(row.id) for row in rows]

    # Sign-in state.

    async def insert_state(self, state_hash: bytes, stored: StoredState, now: datetime) -> None:
        """Keeps a sign-in attempt's secrets until its callback."""
        await self.connection.execute(
            oauth_states.insert().values(
                state_hash=state_hash,
                nonce=stored.nonce,
                code_verifier=stored.code_verifier,
                redirect_uri=stored.redirect_uri,
                return_path=stored.return_path,
                create_time=now,
                expire_time=stored.expire_time,
            )
        )

    async def take_state(self, state_hash: bytes, now: datetime) -> StoredState | None:
        """The sign-in attempt for a state, marked used; `use_time` is the earlier use, if any."""
        row = await self._one(
            select(oauth_states).where(oauth_states.c.state_hash == state_hash).with_for_update()
        )
        if row is None:
            return None
        if row.use_time is None:
            await self.connection.execute(
                update(oauth_states).where(oauth_states.c.state_hash == state_hash).values(use_time=now)
            )
        return StoredState(
            nonce=row.nonce,
            code_verifier=row.code_verifier,
            redirect_uri=row.redirect_uri,
            return_path=row.return_path,
            expire_time=row.expire_time,
            use_time=row.use_time,
        )

    async def purge_states(self, before: datetime) -> None:
        """Forgets sign-in attempts that expired before `before`."""
        await self.connection.execute(oauth_states.delete().where(oauth_states.c.expire_time < before))

    # Grants.

    async def insert_grant(self, grant: Grant, request_id: str, refresh_token: str) -> None:
        """Stores a new active grant with its sealed refresh token."""
        await self.connection.execute(
            grants.insert().values(
                id=grant.id,
                owner_id=grant.owner_id,
                provider=grant.provider.value,
                scopes=list(grant.scopes),
                account_subject=grant.account_subject,
                account_email=grant.account_email,
                state=grant.state.value,
                request_id=request_id,
                refresh_token_sealed=refresh_token,
                create_time=grant.create_time,
                update_time=grant.update_time,
            )
        )

    async def grant_by_request(self, owner_id: str, request_id: str) -> Grant | None:
        """The grant a StoreGrant with this request id created."""
        row = await self._one(
            select(grants).where(grants.c.owner_id == owner_id, grants.c.request_id == request_id)
        )
        return _grant(row) if row else None

    async def get_grant(self, grant_id: str) -> Grant | None:
        """One grant by id."""
        row = await self._one(select(grants).where(grants.c.id == grant_id))
        return _grant(row) if row else None

    async def sealed_grant(
        self, owner_id: str, provider: Provider, *, lock: bool = False
    ) -> SealedGrant | None:
        """The owner's active grant for a provider, with its envelopes."""
        statement = select(grants).where(
            grants.c.owner_id == owner_id,
            grants.c.provider == provider.value,
            grants.c.state == GrantState.ACTIVE.value,
        )
        row = await self._one(statement.with_for_update() if lock else statement)
        if row is None:
            return None
        return SealedGrant(
            grant=_grant(row),
            refresh_token=row.refresh_token_sealed,
            access_token=row.access_token_sealed,
            access_token_expire_time=row.access_token_expire_time,
        )

    async def latest_grant(self, owner_id: str, provider: Provider) -> Grant | None:
        """The owner's newest grant for a provider, whatever its state."""
        row = await self._one(
            select(grants)
            .where(grants.c.owner_id == owner_id, grants.c.provider == provider.value)
            .order_by(grants.c.create_time.desc())
            .limit(1)
        )
        return _grant(row) if row else None

    async def refresh_token_of(self, grant_id: str) -> str | None:
        """A grant's sealed refresh token, while one is kept."""
        row = await self._one(select(grants.c.refresh_token_sealed).where(grants.c.id == grant_id))
        return row.refresh_token_sealed if row else None

    async def list_grants(self, owner_id: str, cursor: Cursor | None, limit: int) -> list[Grant]:
        """A page of an owner's grants, newest first."""
        rows = await self._all(
            select(grants)
            .where(_after(grants, grants.c.owner_id, owner_id, cursor))
            .order_by(grants.c.create_time.desc(), grants.c.id.desc())
            .limit(limit)
        )
        return [_grant(row) for row in rows]

    async def revoke_grants(
        self,
        reason: RevokeReason,
        now: datetime,
        *,
        grant_id: str = "",
        owner_id: str = "",
        provider: str = "",
    ) -> list[Grant]:
        """Revokes active grants (one by id, or an owner's, optionally for one provider); returns them.

        Cached access tokens are dropped at once; the refresh token stays sealed until the provider has
        been told (the outbox relay wipes it).
        """
        condition = grants.c.state == GrantState.ACTIVE.value
        if grant_id:
            condition = and_(condition, grants.c.id == grant_id)
        if owner_id:
            condition = and_(condition, grants.c.owner_id == owner_id)
        if provider:
            condition = and_(condition, grants.c.provider == provider)
        rows = await self._all(
            update(grants)
            .where(condition)
            .values(
                state=GrantState.REVOKED.value,
                revoke_reason=reason.value,
                revoke_time=now,
                update_time=now,
                access_token_sealed=None,
                access_token_expire_time=None,
            )
            .returning(*grants.c)
        )
        return [_grant(row) for row in rows]

    async def save_access_token(
        self,
        grant_id: str,
        access_token: str,
        expire_time: datetime,
        refresh_token: str | None,
        now: datetime,
    ) -> None:
        """Caches a sealed access token (and a rotated refresh token, when the provider sent one)."""
        values: dict[str, Any] = {
            "access_token_sealed": access_token,
            "access_token_expire_time": expire_time,
            "last_refresh_time": now,
            "update_time": now,
        }
        if refresh_token is not None:
            values["refresh_token_sealed"] = refresh_token
        await self.connection.execute(update(grants).where(grants.c.id == grant_id).values(**values))

    async def wipe_refresh_token(self, grant_id: str) -> None:
        """Forgets a revoked grant's refresh token once the provider no longer honours it."""
        await self.connection.execute(
            update(grants).where(grants.c.id == grant_id).values(refresh_token_sealed=None)
        )

    async def sealed_values_after(
        self, after_id: str, limit: int
    ) -> list[tuple[str, str | None, str | None]]:
        """(id, refresh envelope, access envelope) of grants after `after_id` in id order, locked."""
        rows = await self._all(
            select(grants.c.id, grants.c.refresh_token_sealed, grants.c.access_token_sealed)
            .where(grants.c.id > after_id)
            .order_by(grants.c.id)
            .limit(limit)
            .with_for_update()
        )
        return [(str(r.id), r.refresh_token_sealed, r.access_token_sealed) for r in rows]

    async def reseal(self, grant_id: str, refresh_token: str | None, access_token: str | None) -> None:
        """Replaces a grant's envelopes with ones sealed under another key."""
        await self.connection.execute(
            update(grants)
            .where(grants.c.id == grant_id)
            .values(refresh_token_sealed=refresh_token, access_token_sealed=access_token)
        )

    # Outbox.

    async def enqueue(self, kind: str, payload: dict[str, Any], now: datetime) -> None:
        """Records a side effect to send after the transaction commits."""
        await self.connection.execute(
            outbox.insert().values(
                kind=kind, payload=payload, attempts=0, create_time=now, next_attempt_time=now
            )
        )

    async def due_messages(self, now: datetime, limit: int) -> list[OutboxMessage]:
        """Messages due for sending, locked against other replicas' relays."""
        rows = await self._all(
            select(outbox)
            .where(outbox.c.done_time.is_(None), outbox.c.next_attempt_time <= now)
            .order_by(outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [
            OutboxMessage(id=r.id, kind=r.kind, payload=dict(r.payload), attempts=r.attempts) for r in rows
        ]

    async def message_done(self, message_id: int, now: datetime) -> None:
        """Marks a message sent."""
        await self.connection.execute(update(outbox).where(outbox.c.id == message_id).values(done_time=now))

    async def message_failed(self, message_id: int, retry_at: datetime, error: str) -> None:
        """Schedules another attempt."""
        await self.connection.execute(
            update(outbox)
            .where(outbox.c.id == message_id)
            .values(attempts=outbox.c.attempts + 1, next_attempt_time=retry_at, last_error=error[:500])
        )
