"""Users, API keys, sessions, sign-in state, the token vault's grants and the outbox.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Creates the tables with the indexes their queries use."""
    op.create_table(
        "users",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("google_subject", sa.Text, nullable=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("picture_uri", sa.Text, nullable=False),
        sa.Column("plan_id", sa.Text, nullable=False, server_default="free"),
        sa.Column("plan_revision", sa.BigInteger, nullable=False, server_default="0"),
        _time("create_time"),
        _time("update_time"),
        _time("last_sign_in_time", nullable=True),
        _time("delete_time", nullable=True),
        sa.Column("delete_request_id", sa.Text, nullable=True),
        sa.Column("delete_counts", JSONB, nullable=True),
    )
    op.create_index(
        "users_google_subject_key",
        "users",
        ["google_subject"],
        unique=True,
        postgresql_where=sa.text("google_subject IS NOT NULL"),
    )
    op.create_index(
        "users_live_email_key",
        "users",
        ["email"],
        unique=True,
        postgresql_where=sa.text("delete_time IS NULL AND email <> ''"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=False), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("prefix", sa.Text, nullable=False, unique=True),
        sa.Column("secret_hash", sa.LargeBinary, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        _time("create_time"),
        _time("update_time"),
        _time("last_used_time", nullable=True),
        _time("expire_time", nullable=True),
        _time("revoke_time", nullable=True),
    )
    op.create_index("api_keys_user_newest", "api_keys", ["user_id", sa.text("create_time DESC"), "id"])
    op.create_table(
        "sessions",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=False), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("token_hash", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("csrf_token", sa.Text, nullable=False),
        sa.Column("user_agent", sa.Text, nullable=False),
        sa.Column("client_ip", sa.Text, nullable=False),
        _time("create_time"),
        _time("update_time"),
        _time("last_used_time"),
        _time("expire_time"),
        _time("absolute_expire_time"),
        _time("revoke_time", nullable=True),
    )
    op.create_index("sessions_user_newest", "sessions", ["user_id", sa.text("create_time DESC"), "id"])
    op.create_table(
        "oauth_states",
        sa.Column("state_hash", sa.LargeBinary, primary_key=True),
        sa.Column("nonce", sa.Text, nullable=False),
        sa.Column("code_verifier", sa.Text, nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("return_path", sa.Text, nullable=False),
        _time("create_time"),
        _time("expire_time"),
        _time("use_time", nullable=True),
    )
    op.create_index("oauth_states_expiry", "oauth_states", ["expire_time"])
    op.create_table(
        "grants",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("owner_id", UUID(as_uuid=False), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column("account_subject", sa.Text, nullable=False),
        sa.Column("account_email", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("revoke_reason", sa.Text, nullable=True),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("refresh_token_sealed", sa.Text, nullable=True),
        sa.Column("access_token_sealed", sa.Text, nullable=True),
        _time("access_token_expire_time", nullable=True),
        _time("create_time"),
        _time("update_time"),
        _time("last_refresh_time", nullable=True),
        _time("revoke_time", nullable=True),
        sa.UniqueConstraint("owner_id", "request_id", name="grants_owner_request_key"),
    )
    op.create_index(
        "grants_one_active_per_provider",
        "grants",
        ["owner_id", "provider"],
        unique=True,
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_index("grants_owner_newest", "grants", ["owner_id", sa.text("create_time DESC"), "id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _time("create_time"),
        _time("next_attempt_time"),
        _time("done_time", nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index(
        "outbox_due", "outbox", ["next_attempt_time"], postgresql_where=sa.text("done_time IS NULL")
    )


def downgrade() -> None:
    """Drops the tables, dependents first."""
    for table in ("outbox", "grants", "oauth_states", "sessions", "api_keys", "users"):
        op.drop_table(table)
