"""Alembic environment of the identity schema."""

from servicekit.migrations import run_env

from identity.adapters.tables import metadata

run_env(metadata)
