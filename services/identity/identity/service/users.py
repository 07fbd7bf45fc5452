"""Use cases on users: read, rename, delete an account, record the plan, bootstrap a user without Google."""

from __future__ import annotations

from dataclasses import replace

from identity.adapters.store import Conflict, Store, Tx
from identity.domain import names
from identity.domain.models import DEFAULT_PLAN, MAX_DISPLAY_NAME, DeletionCounts, RevokeReason, User
from identity.domain.signin import GoogleProfile
from identity.service.callers import caller_user_id, current_user, user_not_found
from identity.service.ports import Clock, Revocations
from servicekit import auth, errors
from servicekit.logging import get_logger

log = get_logger("identity.users")
GRANT_REVOCATION = "grant.revoke_at_provider"


def clean_display_name(value: str, field: str = "display_name") -> str:
    """A display name, 1 to 100 characters after trimming."""
    cleaned = value.strip()
    if not cleaned or len(cleaned) > MAX_DISPLAY_NAME:
        raise errors.InvalidArgument(
            f"{field} must be 1 to {MAX_DISPLAY_NAME} characters",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation(field, f"1 to {MAX_DISPLAY_NAME} characters"),),
        )
    return cleaned


class UserService:
    """Users as their owners and the platform's services see them."""

    def __init__(self, store: Store, clock: Clock, revocations: Revocations) -> None:
        self.store = store
        self.clock = clock
        self.revocations = revocations

    def _own_id(self, name: str) -> str:
        """The caller's user id when `name` is the caller ("users/me" or their own name)."""
        _, user_id = current_user()
        if name != names.ME and names.parse(name, names.USERS) != user_id:
            raise user_not_found(name)
        return user_id

    async def get(self, name: str) -> User:
        """A user: the caller's own record, or any user for a service."""
        caller = auth.require_principal()
        if auth.is_service(caller):
            if name == names.ME:
                raise user_not_found(name)
            user_id = names.parse(name, names.USERS)
        else:
            user_id = self._own_id(name)
        async with self.store.transaction() as tx:
            user = await tx.get_user(user_id)
        if user is None:
            raise user_not_found(name)
        return user

    async def rename(self, name: str, display_name: str, paths: list[str]) -> User:
        """Changes the caller's display name, the only field a user may change."""
        user_id = self._own_id(name)
        wrong = [path for path in paths if path != "display_name"]
        if wrong:
            raise errors.InvalidArgument(
                f"only display_name can be changed, not {', '.join(wrong)}",
                reason="FIELD_INVALID",
                violations=tuple(
                    errors.FieldViolation("update_mask", f"{p!r} is not mutable") for p in wrong
                ),
            )
        cleaned = clean_display_name(display_name, "user.display_name")
        async with self.store.transaction() as tx:
            user = await tx.get_user(user_id, lock=True)
            if user is None:
                raise user_not_found(name)
            user = replace(user, display_name=cleaned, update_time=self.clock.now())
            await tx.save_user(user)
        log.info("user.renamed", user=f"users/{user_id}")
        return user

    async def delete(self, name: str, request_id: str) -> DeletionCounts:
        """Deletes the caller's account, revoking every key, session and grant in the same transaction."""
        caller = auth.require_user()
        if caller.kind != auth.KIND_SESSION:
            raise errors.PermissionDenied(
                "deleting an account needs a signed-in browser session, not an API key",
                reason="SESSION_REQUIRED",
            )
        user_id = caller_user_id(caller)
        if name != names.ME and names.parse(name, names.USERS) != user_id:
            raise user_not_found(name)
        key = names.request_id(request_id)
        now = self.clock.now()
        async with self.store.transaction() as tx:
            user = await tx.get_user(user_id, lock=True)
            if user is None:
                return await self._repeated_deletion(tx, user_id, key, name)
            keys = await tx.revoke_user_api_keys(user_id, now)
            revoked_sessions = await tx.revoke_sessions(user_id, now)
            revoked_grants = await tx.revoke_grants(RevokeReason.ACCOUNT_DELETED, now, owner_id=user_id)
            for grant in revoked_grants:
                await tx.enqueue(GRANT_REVOCATION, {"grant": grant.id}, now)
            counts = DeletionCounts(len(keys), len(revoked_sessions), len(revoked_grants))
            await tx.mark_user_deleted(user_id, now, key, counts)
        await self.revocations.publish("user", f"users/{user_id}", f"users/{user_id}", now, reason="deleted")
        log.info(
            "user.deleted",
            user=f"users/{user_id}",
            api_keys=counts.api_keys,
            sessions=counts.sessions,
            grants=counts.grants,
        )
        return counts

    async def _repeated_deletion(self, tx: Tx, user_id: str, key: str, name: str) -> DeletionCounts:
        earlier = await tx.deletion_of(user_id)
        if earlier is None or earlier[0] != key:
            raise user_not_found(name)
        return earlier[1]

    async def set_plan(self, owner: str, plan_id: str, revision: int) -> User:
        """Records the owner's plan unless a newer revision is already recorded (internal)."""
        auth.require_service()
        user_id = names.parse(owner, names.USERS, "owner")
        problems = []
        if not plan_id.strip():
            problems.append(errors.FieldViolation("plan_id", "required"))
        if revision < 1:
            problems.append(errors.FieldViolation("revision", "required, at least 1"))
        if problems:
            raise errors.InvalidArgument(
                "plan_id and a revision of at least 1 are required",
                reason="FIELD_INVALID",
                violations=tuple(problems),
            )
        now = self.clock.now()
        async with self.store.transaction() as tx:
            user = await tx.get_user(user_id, lock=True)
            if user is None:
                raise user_not_found(owner)
            if revision <= user.plan_revision:
                return user
            user = replace(user, plan_id=plan_id.strip(), plan_revision=revision, update_time=now)
            await tx.save_user(user)
        await self.revocations.publish("user", owner, owner, now, reason="plan_changed")
        log.info("user.plan_set", user=owner, plan=user.plan_id, revision=revision)
        return user

    async def sign_in(self, tx: Tx, profile: GoogleProfile) -> tuple[User, bool]:
        """The user behind a Google profile, created on first sign-in; True when created.

        A user created without Google (the bootstrap command) is linked on their first Google sign-in with
        the same verified email.
        """
        now = self.clock.now()
        user = await tx.user_by_subject(profile.subject)
        if user is None:
            found = await tx.user_by_email(profile.email)
            user = found if found is not None and found.google_subject is None else None
        if user is not None:
            user = replace(
                user,
                google_subject=profile.subject,
                email=profile.email,
                picture_uri=profile.picture,
                last_sign_in_time=now,
                update_time=now,
            )
            await tx.save_user(user)
            return user, False
        user = User(
            id=names.new_id(),
            email=profile.email,
            display_name=profile.name,
            picture_uri=profile.picture,
            google_subject=profile.subject,
            plan_id=DEFAULT_PLAN,
            plan_revision=0,
            create_time=now,
            update_time=now,
            last_sign_in_time=now,
        )
        try:
            await tx.insert_user(user)
        except Conflict:
            raise errors.Aborted(
                "another sign-in for this account happened at the same time; try again", reason="SIGN_IN_RACE"
            ) from None
        log.info("user.created", user=f"users/{user.id}", via="google")
        return user, True

    async def ensure(self, email: str, display_name: str) -> tuple[User, bool]:
        """The live user with this email, created when missing (bootstrap without Google)."""
        cleaned = email.strip().lower()
        if "@" not in cleaned or len(cleaned) > 320:
            raise errors.InvalidArgument(
                "email must be an email address",
                reason="FIELD_INVALID",
                violations=(errors.FieldViolation("email", "an email address"),),
            )
        now = self.clock.now()
        async with self.store.transaction() as tx:
            found = await tx.user_by_email(cleaned)
            if found is not None:
                return found, False
            user = User(
                id=names.new_id(),
                email=cleaned,
                display_name=clean_display_name(display_name or cleaned.split("@")[0], "name"),
                picture_uri="",
                google_subject=None,
                plan_id=DEFAULT_PLAN,
                plan_revision=0,
                create_time=now,
                update_time=now,
            )
            await tx.insert_user(user)
        log.info("user.created", user=f"users/{user.id}", via="bootstrap")
        return user, True
