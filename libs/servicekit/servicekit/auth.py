"""Checks every service makes on the caller: is there a principal, does it hold a scope, is it a service.

The gateway authenticates the caller and sends a `Principal` in gRPC metadata (see servicekit.context); these
helpers turn the common refusals into domain errors with the reasons the contracts document. Kinds are
`api_key`, `session` (holding every scope) and `service` (another service of the platform, whose subject is
`services/{name}` and which acts for users through explicit `owner` fields).
"""

from __future__ import annotations

from servicekit import context, errors

KIND_API_KEY = "api_key"
KIND_SESSION = "session"
KIND_SERVICE = "service"
USER_KINDS = frozenset({KIND_API_KEY, KIND_SESSION})
SERVICE_PREFIX = "services/"


def service_principal(name: str) -> context.Principal:
    """The principal a service presents when it calls another service on its own behalf."""
    return context.Principal(subject=f"{SERVICE_PREFIX}{name}", kind=KIND_SERVICE)


def require_principal() -> context.Principal:
    """The current caller; UNAUTHENTICATED reason PRINCIPAL_MISSING when there is none or it is unusable."""
    caller = context.principal()
    if caller is None or caller.kind not in (*USER_KINDS, KIND_SERVICE) or not caller.subject:
        raise errors.Unauthenticated(
            "the call carries no valid principal (metadata x-comfyapi-principal)", reason="PRINCIPAL_MISSING"
        )
    return caller


def is_service(caller: context.Principal) -> bool:
    """Tells whether the caller is another service rather than a user."""
    return caller.kind == KIND_SERVICE


def require_user() -> context.Principal:
    """The current caller, which must act as a user; PERMISSION_DENIED reason USER_ONLY for a service."""
    caller = require_principal()
    if is_service(caller):
        raise errors.PermissionDenied(
            "this method acts for the calling user; a service principal has no user", reason="USER_ONLY"
        )
    return caller


def require_service(caller: context.Principal | None = None) -> context.Principal:
    """The current caller, which must be a service; PERMISSION_DENIED reason SERVICE_ONLY otherwise."""
    caller = caller or require_principal()
    if not is_service(caller):
        raise errors.PermissionDenied(
            "this method is internal and may be called only by a service of the platform",
            reason="SERVICE_ONLY",
        )
    return caller


def require_scope(caller: context.Principal, scope: str) -> None:
    """Refuses with PERMISSION_DENIED reason SCOPE_MISSING naming `scope` unless the caller holds it.

    Services are trusted for every scope; sessions carry every scope in their principal.
    """
    if is_service(caller) or caller.has_scope(scope):
        return
    raise errors.PermissionDenied(
        f"the credential lacks the scope {scope!r}", reason="SCOPE_MISSING", metadata={"scope": scope}
    )
