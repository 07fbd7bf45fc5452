"""Conversion of identity's Principal message into the call-context principal every service receives."""

from __future__ import annotations

from comfyapi.identity.v1 import principal_pb2
from servicekit import errors
from servicekit.context import Principal

KINDS = {
    principal_pb2.PRINCIPAL_KIND_API_KEY: "api_key",
    principal_pb2.PRINCIPAL_KIND_SESSION: "session",
    principal_pb2.PRINCIPAL_KIND_SERVICE: "service",
}
DEFAULT_PLAN = "free"
# The gateway's own identity when it calls identity's internal RPCs (sign-in, authentication) for a caller
# that is not authenticated yet.
# Same shape as servicekit.auth.service_principal("gateway").
GATEWAY = Principal(subject="services/gateway", kind="service")


def from_proto(message: principal_pb2.Principal) -> Principal:
    """The call-context principal for an authenticated user; an unusable message is refused."""
    kind = KINDS.get(message.kind)
    if kind not in ("api_key", "session") or not message.user.startswith("users/"):
        raise errors.Unauthenticated("the credential did not resolve to a user", reason="PRINCIPAL_INVALID")
    return Principal(
        subject=message.user,
        kind=kind,
        scopes=frozenset(message.scopes),
        plan=message.plan_id or DEFAULT_PLAN,
        credential_id=message.api_key if kind == "api_key" else message.session,
    )


def resource_tags(kind: str, name: str) -> set[str]:
    """Invalidation tags for a resource name (`apiKeys/k1`): the name itself and its bare id."""
    return {f"{kind}:{name}", f"{kind}:{name.rpartition('/')[2]}"} if name else set()


def tags_of(principal: Principal, *extra: str) -> frozenset[str]:
    """Every tag a revocation of the principal's credential or user may name."""
    tags = resource_tags("user", principal.subject)
    tags |= resource_tags(principal.kind, principal.credential_id)
    tags |= {f"{principal.kind}:{value}" for value in extra if value}
    return frozenset(tags)
