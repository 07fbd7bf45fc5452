"""SQLAlchemy table metadata of the billing schema; tables are created through search_path."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, MetaData, Table, Text

SCHEMA_NAME = "billing"
metadata = MetaData()

reservations = Table(
    "reservations",
    metadata,
    Column("job", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("request_id", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    Index("reservations_owner_period", "owner", "period_start"),
)

# Kept by the `reserve_units` and `settle_units` functions (migration 0003), never written directly.
usage_totals = Table(
    "usage_totals",
    metadata,
    Column("owner", Text, primary_key=True),
    Column("period_start", DateTime(timezone=True), primary_key=True),
    Column("committed", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
)
