"""Alembic environment of the drive_sync schema."""

from servicekit.migrations import run_env

from drive_sync.adapters.tables import metadata

run_env(metadata)
