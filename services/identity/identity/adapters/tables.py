"""SQLAlchemy table metadata of the identity schema; tables are created through search_path.

Secrets are never stored in the clear: API keys and session tokens as SHA-256 hashes, OAuth tokens as
AES-GCM vault envelopes (`*_sealed` columns). Migration 0002 creates these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

SCHEMA_NAME = "identity"
metadata = MetaData()


def _time(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("google_subject", Text, nullable=True),
    Column("email", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("picture_uri", Text, nullable=False),
    Column("plan_id", Text, nullable=False),
    Column("plan_revision", BigInteger, nullable=False),
    _time("create_time"),
    _time("update_time"),
    _time("last_sign_in_time", nullable=True),
    _time("delete_time", nullable=True),
    Column("delete_request_id", Text, nullable=True),
    Column("delete_counts", JSONB, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("user_id", UUID(as_uuid=False), ForeignKey("users.id"), nullable=False),
    Column("prefix", Text, nullable=False, unique=True),
    Column("secret_hash", LargeBinary, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    _time("create_time"),
    _time("update_time"),
    _time("last_used_time", nullable=True),
    _time("expire_time", nullable=True),
    _time("revoke_time", nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("user_id", UUID(as_uuid=False), ForeignKey("users.id"), nullable=False),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("csrf_token", Text, nullable=False),
    Column("user_agent", Text, nullable=False),
    Column("client_ip", Text, nullable=False),
    _time("create_time"),
    _time("update_time"),
    _time("last_used_time"),
    _time("expire_time"),
    _time("absolute_expire_time"),
    _time("revoke_time", nullable=True),
)

oauth_states = Table(
    "oauth_states",
    metadata,
    Column("state_hash", LargeBinary, primary_key=True),
    Column("nonce", Text, nullable=False),
    Column("code_verifier", Text, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("return_path", Text, nullable=False),
    _time("create_time"),
    _time("expire_time"),
    _time("use_time", nullable=True),
)

grants = Table(
    "grants",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("owner_id", UUID(as_uuid=False), ForeignKey("users.id"), nullable=False),
    Column("provider", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("account_subject", Text, nullable=False),
    Column("account_email", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("revoke_reason", Text, nullable=True),
    Column("request_id", Text, nullable=False),
    Column("refresh_token_sealed", Text, nullable=True),
    Column("access_token_sealed", Text, nullable=True),
    _time("access_token_expire_time", nullable=True),
    _time("create_time"),
    _time("update_time"),
    _time("last_refresh_time", nullable=True),
    _time("revoke_time", nullable=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("attempts", Integer, nullable=False),
    _time("create_time"),
    _time("next_attempt_time"),
    _time("done_time", nullable=True),
    Column("last_error", Text, nullable=True),
)
