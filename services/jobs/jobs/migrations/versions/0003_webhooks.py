"""Webhook signing secrets (sealed, one row per version), deliveries and their attempt log.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("owner", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("masked", sa.Text, nullable=False),
        sa.Column("create_time", TIME, nullable=False),
        sa.Column("expire_time", TIME),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
    )
    op.create_index(
        "webhook_secrets_owner_request",
        "webhook_secrets",
        ["owner", "request_id"],
        unique=True,
        postgresql_where=sa.text("request_id <> ''"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("job_id", UUID(as_uuid=False), nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("source_key", sa.Text),
        sa.Column("redelivery_of", UUID(as_uuid=False)),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("event_time", TIME, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("latency_seconds", sa.Double),
        sa.Column("response_excerpt", sa.Text, nullable=False),
        sa.Column("error_message", sa.Text, nullable=False),
        sa.Column("last_attempt_time", TIME),
        sa.Column("next_attempt_time", TIME),
        sa.Column("create_time", TIME, nullable=False),
        sa.Column("update_time", TIME, nullable=False),
        sa.CheckConstraint(
            "state in ('pending', 'retrying', 'succeeded', 'failed')", name="webhook_deliveries_state_known"
        ),
    )
    # Exactly one delivery per announced event, however often the relay hands the message over.
    op.create_index("webhook_deliveries_source", "webhook_deliveries", ["source_key"], unique=True)
    op.create_index(
        "webhook_deliveries_owner_request",
        "webhook_deliveries",
        ["owner", "request_id"],
        unique=True,
        postgresql_where=sa.text("request_id <> ''"),
    )
    op.create_index(
        "webhook_deliveries_job_newest",
        "webhook_deliveries",
        ["job_id", sa.text("create_time DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_time"],
        postgresql_where=sa.text("state in ('pending', 'retrying')"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("delivery_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("attempt_time", TIME, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("latency_seconds", sa.Double),
        sa.Column("response_excerpt", sa.Text, nullable=False),
        sa.Column("error_message", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.id"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_secrets")
