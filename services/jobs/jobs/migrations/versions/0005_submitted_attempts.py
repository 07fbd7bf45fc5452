"""The highest attempt of each job ever sent to inference, so a new attempt can skip the search of backends.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("submitted_attempts", sa.Integer(), nullable=False, server_default="0"))
    # What was sent before this column existed is unknown: the next attempt of an unfinished job searches.
    op.execute("UPDATE jobs SET submitted_attempts = attempt_count + 1 WHERE state IN ('queued', 'running')")


def downgrade() -> None:
    op.drop_column("jobs", "submitted_attempts")
