"""Alembic environment of the drive_sync schema."""

from drive_sync.adapters.tables import metadata
from servicekit.migrations import run_env

run_env(metadata)
