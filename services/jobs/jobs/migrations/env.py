"""Alembic environment of the jobs schema."""

from servicekit.migrations import run_env

from jobs.adapters.tables import metadata

run_env(metadata)
