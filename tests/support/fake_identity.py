"""An in-memory IdentityService for the gateway's tests, served on a real gRPC port.

It answers the parts of the identity contract the gateway relays (authentication, users, API keys, sessions
and a sign-in that skips Google), with the contract's error reasons, and counts calls so tests can tell a
cache hit from a round trip. It is a stand-in for the real service where a test is about the gateway alone;
the end-to-end tests in tests/e2e/identity use the real identity service.
"""

from __future__ import annotations

import secrets
import string
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from comfyapi.identity.v1 import api_key_pb2, principal_pb2, session_pb2, user_pb2
from comfyapi.identity.v1 import identity_service_pb2 as pb
from comfyapi.identity.v1 import identity_service_pb2_grpc as pb_grpc
from servicekit import context, errors
from servicekit.server import Registration, ServiceApp, fill_unimplemented

ALL_SCOPES = ("jobs:read", "jobs:write", "presets:read", "uploads:write", "keys:manage")
BASE62 = string.ascii_letters + string.digits


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp


@dataclass
class _Key:
    message: api_key_pb2.ApiKey
    secret: str


@dataclass
class _Session:
    message: session_pb2.Session
    token: str
    csrf_token: str
    revoked: bool = False


@dataclass
class FakeIdentityState:
    """Everything the fake knows; tests reach in to add users or read call counts."""

    users: dict[str, user_pb2.User] = field(default_factory=dict)
    keys: dict[str, _Key] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    cache_ttl_seconds: int = 30
    states: dict[str, str] = field(default_factory=dict)

    def add_user(self, email: str, plan: str = "free") -> str:
        name = f"users/u{len(self.users) + 1}"
        self.users[name] = user_pb2.User(
            name=name, email=email, display_name=email.split("@")[0], plan_id=plan
        )
        return name

    def add_key(self, user: str, scopes: tuple[str, ...] = ALL_SCOPES) -> str:
        """Creates an API key directly; returns the full key."""
        ident = f"k{len(self.keys) + 1}"
        prefix = "cmfy_" + "".join(secrets.choice(BASE62) for _ in range(8))
        secret = "".join(secrets.choice(BASE62) for _ in range(43))
        self.keys[ident] = _Key(
            api_key_pb2.ApiKey(
                name=f"apiKeys/{ident}",
                user=user,
                display_name="test",
                prefix=prefix,
                scopes=scopes,
                state=api_key_pb2.API_KEY_STATE_ACTIVE,
                create_time=_now(),
            ),
            secret,
        )
        return f"{prefix}_{secret}"

    def add_session(self, user: str) -> tuple[str, str, str]:
        """Opens a session directly; returns (name, token, csrf token)."""
        name = f"sessions/s{len(self.sessions) + 1}"
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.sessions[name] = _Session(
            session_pb2.Session(name=name, user=user, create_time=_now()), token, csrf
        )
        return name, token, csrf

    def revoke_key(self, name: str) -> None:
        key = self.keys[name.rpartition("/")[2]]
        key.message.state = api_key_pb2.API_KEY_STATE_REVOKED


def _caller(*, service: bool = False) -> context.Principal:
    principal = context.principal()
    if principal is None:
        raise errors.Unauthenticated("no principal", reason="PRINCIPAL_MISSING")
    if service != (principal.kind == "service"):
        reason = "SERVICE_ONLY" if service else "USER_ONLY"
        raise errors.PermissionDenied(f"wrong caller kind {principal.kind}", reason=reason)
    return principal


def _scope(principal: context.Principal, scope: str) -> None:
    if not principal.has_scope(scope):
        raise errors.PermissionDenied(
            f"missing scope {scope}", reason="SCOPE_MISSING", metadata={"scope": scope}
        )


@fill_unimplemented(pb.DESCRIPTOR.services_by_name["IdentityService"], "not part of the gateway's fake")
class FakeIdentityServicer(pb_grpc.IdentityServiceServicer):
    """The fake's RPCs; each records its name in `state.calls`."""

    def __init__(self, state: FakeIdentityState) -> None:
        self.state = state

    def _ttl(self) -> duration_pb2.Duration:
        return duration_pb2.Duration(seconds=self.state.cache_ttl_seconds)

    async def AuthenticateApiKey(self, request: Any, _: Any) -> pb.AuthenticateApiKeyResponse:
        self.state.calls["AuthenticateApiKey"] += 1
        _caller(service=True)
        prefix, _, secret = request.key.rpartition("_")
        found = next((k for k in self.state.keys.values() if k.message.prefix == prefix), None)
        if found is None or not secrets.compare_digest(found.secret, secret):
            raise errors.Unauthenticated("API key is not valid", reason="API_KEY_INVALID")
        if found.message.state == api_key_pb2.API_KEY_STATE_REVOKED:
            raise errors.Unauthenticated("API key was revoked", reason="API_KEY_REVOKED")
        user = self.state.users[found.message.user]
        principal = principal_pb2.Principal(
            user=user.name,
            kind=principal_pb2.PRINCIPAL_KIND_API_KEY,
            scopes=found.message.scopes,
            plan_id=user.plan_id,
            api_key=found.message.name,
        )
        return pb.AuthenticateApiKeyResponse(principal=principal, cache_ttl=self._ttl())

    async def AuthenticateSession(self, request: Any, _: Any) -> pb.AuthenticateSessionResponse:
        self.state.calls["AuthenticateSession"] += 1
        _caller(service=True)
        found = next((s for s in self.state.sessions.values() if s.token == request.session_token), None)
        if found is None or found.revoked:
            raise errors.Unauthenticated("session is not valid", reason="SESSION_INVALID")
        user = self.state.users[found.message.user]
        principal = principal_pb2.Principal(
            user=user.name,
            kind=principal_pb2.PRINCIPAL_KIND_SESSION,
            scopes=ALL_SCOPES,
            plan_id=user.plan_id,
            session=found.message.name,
        )
        return pb.AuthenticateSessionResponse(
            principal=principal, session=found.message, csrf_token=found.csrf_token, cache_ttl=self._ttl()
        )

    async def BeginGoogleSignIn(self, request: Any, _: Any) -> pb.BeginGoogleSignInResponse:
        self.state.calls["BeginGoogleSignIn"] += 1
        _caller(service=True)
        state = secrets.token_urlsafe(16)
        self.state.states[state] = request.return_path or "/"
        expire = timestamp_pb2.Timestamp()
        expire.FromDatetime(datetime.now(UTC) + timedelta(minutes=10))
        uri = f"https://accounts.example.test/auth?state={state}&redirect_uri={request.redirect_uri}"
        return pb.BeginGoogleSignInResponse(authorization_uri=uri, state=state, expire_time=expire)

    async def CompleteGoogleSignIn(self, request: Any, _: Any) -> pb.CompleteGoogleSignInResponse:
        self.state.calls["CompleteGoogleSignIn"] += 1
        _caller(service=True)
        return_path = self.state.states.pop(request.state, None)
        if return_path is None:
            raise errors.FailedPrecondition("unknown or used state", reason="OAUTH_STATE_INVALID")
        user = next((u for u in self.state.users.values() if u.email == request.code), None)
        user_name = user.name if user else self.state.add_user(request.code)
        name, token, csrf = self.state.add_session(user_name)
        return pb.CompleteGoogleSignInResponse(
            user=self.state.users[user_name],
            session=self.state.sessions[name].message,
            session_token=token,
            csrf_token=csrf,
            new_user=user is None,
            return_path=return_path,
        )

    async def GetUser(self, request: Any, _: Any) -> pb.GetUserResponse:
        self.state.calls["GetUser"] += 1
        caller = _caller()
        name = caller.subject if request.name == "users/me" else request.name
        if name != caller.subject or name not in self.state.users:
            raise errors.NotFound("no such user", reason="USER_NOT_FOUND")
        return pb.GetUserResponse(user=self.state.users[name])

    async def CreateApiKey(self, request: Any, _: Any) -> pb.CreateApiKeyResponse:
        self.state.calls["CreateApiKey"] += 1
        caller = _caller()
        _scope(caller, "keys:manage")
        unknown = [s for s in request.scopes if s not in ALL_SCOPES]
        if unknown:
            raise errors.InvalidArgument(
                f"unknown scope {unknown[0]}",
                reason="SCOPE_UNKNOWN",
                violations=(errors.FieldViolation("scopes", f"unknown scope {unknown[0]}"),),
            )
        key = self.state.add_key(caller.subject, tuple(request.scopes))
        record = list(self.state.keys.values())[-1]
        record.message.display_name = request.display_name
        return pb.CreateApiKeyResponse(api_key=record.message, key=key)

    async def ListApiKeys(self, request: Any, _: Any) -> pb.ListApiKeysResponse:
        self.state.calls["ListApiKeys"] += 1
        caller = _caller()
        _scope(caller, "keys:manage")
        mine = [
            k.message
            for k in reversed(self.state.keys.values())
            if k.message.user == caller.subject
            and (request.show_inactive or k.message.state == api_key_pb2.API_KEY_STATE_ACTIVE)
        ]
        return pb.ListApiKeysResponse(api_keys=mine)

    async def RevokeApiKey(self, request: Any, _: Any) -> pb.RevokeApiKeyResponse:
        self.state.calls["RevokeApiKey"] += 1
        caller = _caller()
        _scope(caller, "keys:manage")
        key = self.state.keys.get(request.name.rpartition("/")[2])
        if key is None or key.message.user != caller.subject:
            raise errors.NotFound("no such API key", reason="API_KEY_NOT_FOUND")
        key.message.state = api_key_pb2.API_KEY_STATE_REVOKED
        return pb.RevokeApiKeyResponse(api_key=key.message)

    async def ListSessions(self, request: Any, _: Any) -> pb.ListSessionsResponse:
        self.state.calls["ListSessions"] += 1
        caller = _caller()
        mine = [
            s.message
            for s in reversed(self.state.sessions.values())
            if s.message.user == caller.subject and not s.revoked
        ]
        return pb.ListSessionsResponse(sessions=mine)

    async def RevokeSession(self, request: Any, _: Any) -> pb.RevokeSessionResponse:
        self.state.calls["RevokeSession"] += 1
        caller = _caller()
        found = self.state.sessions.get(request.name)
        if found is None or found.message.user != caller.subject:
            raise errors.NotFound("no such session", reason="SESSION_NOT_FOUND")
        found.revoked = True
        return pb.RevokeSessionResponse()


def fake_identity_app(state: FakeIdentityState) -> ServiceApp:
    """A ServiceApp serving the fake, for `tests.support.servers.serving`."""
    descriptor = pb.DESCRIPTOR.services_by_name["IdentityService"]
    servicer = FakeIdentityServicer(state)
    return ServiceApp(
        name="identity",
        registrations=[Registration(descriptor, servicer, pb_grpc.add_IdentityServiceServicer_to_server)],
    )
