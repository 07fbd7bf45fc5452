"""Who the caller acts as, in identity's own terms."""

from __future__ import annotations

from identity.domain import names
from servicekit import auth, errors
from servicekit.context import Principal


def caller_user_id(caller: Principal) -> str:
    """The id of the user a user principal acts as."""
    if not caller.subject.startswith(names.USERS):
        raise errors.Unauthenticated("the principal names no user", reason="PRINCIPAL_MISSING")
    return caller.subject.removeprefix(names.USERS)


def current_user() -> tuple[Principal, str]:
    """The calling user principal and its user id."""
    caller = auth.require_user()
    return caller, caller_user_id(caller)


def user_not_found(name: str) -> errors.NotFound:
    """The error for a user that does not exist or that the caller may not see."""
    return errors.NotFound(f"user {name!r} does not exist", reason="USER_NOT_FOUND", metadata={"name": name})
