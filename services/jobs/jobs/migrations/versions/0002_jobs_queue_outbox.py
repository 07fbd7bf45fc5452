"""Jobs with their durable queue columns, the owners' dispatch turns, and the outbox.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False),
        sa.Column("source", JSONB, nullable=False),
        sa.Column("inputs", JSONB, nullable=False),
        sa.Column("labels", JSONB, nullable=False),
        sa.Column("webhook", JSONB),
        sa.Column("deadline", TIME),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("workflow_json", sa.Text, nullable=False),
        sa.Column("files", JSONB, nullable=False),
        sa.Column("create_time", TIME, nullable=False),
        sa.Column("update_time", TIME, nullable=False),
        sa.Column("start_time", TIME),
        sa.Column("end_time", TIME),
        sa.Column("attempt_count", sa.Integer, nullable=False),
        sa.Column("progress", JSONB),
        sa.Column("error", JSONB),
        sa.Column("outputs", JSONB, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("next_attempt_time", TIME, nullable=False),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_expires", TIME),
        sa.CheckConstraint(
            "state in ('admitting', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')",
            name="jobs_state_known",
        ),
    )
    op.create_index(
        "jobs_owner_request",
        "jobs",
        ["owner", "request_id"],
        unique=True,
        postgresql_where=sa.text("request_id <> ''"),
    )
    op.create_index("jobs_owner_newest", "jobs", ["owner", sa.text("create_time DESC"), sa.text("id DESC")])
    op.create_index(
        "jobs_queued",
        "jobs",
        [sa.text("priority DESC"), "create_time"],
        postgresql_where=sa.text("state = 'queued'"),
    )
    op.create_index(
        "jobs_running_lease", "jobs", ["lease_expires"], postgresql_where=sa.text("state = 'running'")
    )
    op.create_index(
        "jobs_admitting", "jobs", ["create_time"], postgresql_where=sa.text("state = 'admitting'")
    )
    op.create_table(
        "owner_turns",
        sa.Column("owner", sa.Text, primary_key=True),
        sa.Column("last_dispatch_time", TIME, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("create_time", TIME, nullable=False),
        sa.Column("available_time", TIME, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("done_time", TIME),
    )
    op.create_index(
        "outbox_pending", "outbox", ["available_time"], postgresql_where=sa.text("done_time IS NULL")
    )
    op.create_index("outbox_topic_key", "outbox", ["topic", "key"], unique=True)


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("owner_turns")
    op.drop_table("jobs")
