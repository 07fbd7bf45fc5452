"""Alembic environment of the billing schema."""

from servicekit.migrations import run_env

from billing.adapters.tables import metadata

run_env(metadata)
