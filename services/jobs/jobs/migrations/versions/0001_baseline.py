"""Baseline of the jobs schema: the schema and its own version table, created by env.py.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

revision = "0001"
down_revision: str | None = None
branch_labels = ("jobs",)
depends_on = None


def upgrade() -> None:
    """Nothing beyond the schema itself, which the environment creates."""


def downgrade() -> None:
    """Nothing to remove; the schema and version table stay."""
