"""Per-call context: the request id and the caller's principal, carried across gRPC hops in metadata.

The gateway (or the first service a call reaches) sets both; every server interceptor reads them from
incoming metadata into context variables, and every client interceptor writes them into outgoing metadata,
so logs on every hop carry the same request id and the same principal.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

REQUEST_ID_KEY = "x-request-id"
PRINCIPAL_KEY = "x-comfyapi-principal"
MAX_REQUEST_ID_LENGTH = 128


@dataclass(frozen=True)
class Principal:
    """Who is calling: `subject` is a resource name (`users/42`); `kind` is api_key, session or service."""

    subject: str
    kind: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    plan: str = ""
    credential_id: str = ""

    def has_scope(self, scope: str) -> bool:
        """Tells whether the caller was granted `scope`."""
        return scope in self.scopes

    def to_header(self) -> str:
        """Serializes the principal for gRPC metadata."""
        return json.dumps(
            {
                "sub": self.subject,
                "kind": self.kind,
                "scopes": sorted(self.scopes),
                "plan": self.plan,
                "cred": self.credential_id,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_header(cls, value: str) -> Principal | None:
        """Parses metadata written by `to_header`; anything malformed is treated as no principal."""
        try:
            raw = json.loads(value)
            return cls(
                subject=str(raw["sub"]),
                kind=str(raw["kind"]),
                scopes=frozenset(map(str, raw["scopes"])),
                plan=str(raw.get("plan", "")),
                credential_id=str(raw.get("cred", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def log_fields(self) -> str:
        """The principal as it appears in logs: the subject only, never a credential."""
        return self.subject


_request_id: ContextVar[str] = ContextVar("request_id", default="")
_principal: ContextVar[Principal | None] = ContextVar("principal", default=None)


def new_request_id() -> str:
    """A fresh random request id (128 bits, hex)."""
    return secrets.token_hex(16)


def clean_request_id(value: str | None) -> str:
    """Keeps a caller's request id when it is short printable ASCII, else makes a new one."""
    if value and len(value) <= MAX_REQUEST_ID_LENGTH and value.isascii() and value.isprintable():
        return value
    return new_request_id()


def request_id() -> str:
    """The current call's request id, or an empty string outside a call."""
    return _request_id.get()


def principal() -> Principal | None:
    """The current caller, or None for an anonymous call."""
    return _principal.get()


@contextmanager
def bound(request_id: str, principal: Principal | None) -> Iterator[None]:
    """Sets the call context for the duration of a block."""
    rid_token = _request_id.set(request_id)
    principal_token = _principal.set(principal)
    try:
        yield
    finally:
        _request_id.reset(rid_token)
        _principal.reset(principal_token)


def from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[str, Principal | None]:
    """Reads the request id and principal from incoming gRPC metadata."""
    values = {key: value for key, value in metadata or () if isinstance(value, str)}
    found = values.get(PRINCIPAL_KEY)
    return clean_request_id(values.get(REQUEST_ID_KEY)), Principal.from_header(found) if found else None


def to_metadata() -> list[tuple[str, str]]:
    """The outgoing gRPC metadata that carries the current context to the next hop."""
    pairs = [(REQUEST_ID_KEY, request_id() or new_request_id())]
    current = principal()
    if current is not None:
        pairs.append((PRINCIPAL_KEY, current.to_header()))
    return pairs
