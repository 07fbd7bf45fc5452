"""Alembic environment of the identity schema."""

from identity.adapters.tables import metadata
from servicekit.migrations import run_env

run_env(metadata)
