"""Browser sessions: opened by sign-in, resolved on each browser request, listed and revoked by owners."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from identity.adapters.store import Store, Tx
from identity.domain import credentials, names, paging
from identity.domain.models import Session, SessionPolicy, usage_is_stale
from identity.domain.scopes import ALL_SCOPES
from identity.service.callers import current_user
from identity.service.ports import Clock, Revocations
from servicekit import auth, errors
from servicekit.context import Principal
from servicekit.logging import get_logger

log = get_logger("identity.sessions")
TOUCH_EVERY = timedelta(minutes=1)
MAX_USER_AGENT = 512


@dataclass(frozen=True)
class OpenedSession:
    """A new session with its secrets, which are returned once."""

    session: Session
    token: str = field(repr=False)
    csrf_token: str = field(repr=False)


@dataclass(frozen=True)
class SessionAuthentication:
    """What a valid session token resolves to."""

    principal: Principal
    session: Session
    csrf_token: str = field(repr=False)


def _invalid() -> errors.Unauthenticated:
    return errors.Unauthenticated("the session is not valid; sign in again", reason="SESSION_INVALID")


def session_principal(session: Session, plan: str) -> Principal:
    """A session's principal, which holds every scope."""
    return Principal(
        subject=f"users/{session.user_id}",
        kind=auth.KIND_SESSION,
        scopes=ALL_SCOPES,
        plan=plan,
        credential_id=f"sessions/{session.id}",
    )


class SessionService:
    """Sessions and their expiry rules."""

    def __init__(self, store: Store, clock: Clock, revocations: Revocations, policy: SessionPolicy) -> None:
        self.store = store
        self.clock = clock
        self.revocations = revocations
        self.policy = policy

    async def open(self, tx: Tx, user_id: str, user_agent: str, client_ip: str) -> OpenedSession:
        """Creates a session for a user who just signed in."""
        now = self.clock.now()
        expire, absolute = self.policy.first_expiry(now)
        session = Session(
            id=names.new_id(),
            user_id=user_id,
            user_agent=user_agent[:MAX_USER_AGENT],
            client_ip=client_ip[:64],
            create_time=now,
            update_time=now,
            last_used_time=now,
            expire_time=expire,
            absolute_expire_time=absolute,
        )
        token, csrf = credentials.generate_session_token(), credentials.generate_csrf_token()
        await tx.insert_session(session, credentials.digest(token), csrf)
        log.info("session.opened", session=f"sessions/{session.id}", user=f"users/{user_id}")
        return OpenedSession(session=session, token=token, csrf_token=csrf)

    async def authenticate(self, token: str) -> SessionAuthentication:
        """The principal behind a session token, sliding its expiry forward (internal)."""
        auth.require_service()
        if not credentials.is_session_token(token):
            raise _invalid()
        now = self.clock.now()
        async with self.store.transaction() as tx:
            found = await tx.session_by_token_hash(credentials.digest(token))
            if found is None:
                raise _invalid()
            session, csrf, plan = found
            if session.revoke_time is not None:
                raise _invalid()
            if session.expired(now):
                raise errors.Unauthenticated(
                    "the session has expired; sign in again", reason="SESSION_EXPIRED"
                )
            if usage_is_stale(session.last_used_time, now, TOUCH_EVERY):
                session = replace(
                    session,
                    last_used_time=now,
                    update_time=now,
                    expire_time=session.extended(now, self.policy.idle),
                )
                await tx.touch_session(session.id, now, session.expire_time)
        return SessionAuthentication(
            principal=session_principal(session, plan), session=session, csrf_token=csrf
        )

    async def page(self, page_size: int, page_token: str) -> tuple[list[Session], str]:
        """A page of the caller's active sessions, newest first."""
        _, user_id = current_user()
        size, cursor = paging.page_size(page_size), paging.decode(page_token)
        async with self.store.transaction() as tx:
            found = await tx.list_sessions(user_id, cursor, size + 1, self.clock.now())
        page = found[:size]
        token = paging.encode(paging.Cursor(page[-1].create_time, page[-1].id)) if len(found) > size else ""
        return page, token

    async def revoke(self, name: str) -> None:
        """Revokes one of the caller's sessions; revoking a revoked one again is fine."""
        _, user_id = current_user()
        session_id = names.parse(name, names.SESSIONS)
        now = self.clock.now()
        async with self.store.transaction() as tx:
            session = await tx.get_session(session_id)
            if session is None or session.user_id != user_id:
                raise errors.NotFound(
                    f"session {name!r} does not exist", reason="SESSION_NOT_FOUND", metadata={"name": name}
                )
            revoked = await tx.revoke_sessions(user_id, now, only=session_id)
        await self._announce(revoked, user_id, now)

    async def revoke_all(self, keep_current: bool) -> int:
        """Revokes the caller's sessions, optionally all but the one in use; returns how many."""
        caller, user_id = current_user()
        keep = ""
        if keep_current and caller.kind == auth.KIND_SESSION:
            keep = caller.credential_id.removeprefix(names.SESSIONS)
        now = self.clock.now()
        async with self.store.transaction() as tx:
            revoked = await tx.revoke_sessions(user_id, now, keep=keep)
        await self._announce(revoked, user_id, now)
        return len(revoked)

    async def _announce(self, session_ids: list[str], user_id: str, now: datetime) -> None:
        for session_id in session_ids:
            log.info("session.revoked", session=f"sessions/{session_id}", user=f"users/{user_id}")
            await self.revocations.publish("session", f"sessions/{session_id}", f"users/{user_id}", now)
