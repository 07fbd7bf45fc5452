"""Alembic environment of the billing schema."""

from billing.adapters.tables import metadata
from servicekit.migrations import run_env

run_env(metadata)
