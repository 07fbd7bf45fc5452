"""Queued jobs indexed by owner, so a claim visits each owner's first job instead of sorting the whole queue.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "jobs_queued_by_owner",
        "jobs",
        ["owner", sa.text("priority DESC"), "create_time", "id"],
        postgresql_where=sa.text("state = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index("jobs_queued_by_owner", table_name="jobs")
