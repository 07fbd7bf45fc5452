"""SQLAlchemy table metadata of the identity schema; tables are created through search_path."""

from __future__ import annotations

from sqlalchemy import MetaData

SCHEMA_NAME = "identity"
metadata = MetaData()
