"""SQLAlchemy table metadata of the jobs schema; tables are created through search_path."""

from __future__ import annotations

from sqlalchemy import MetaData

SCHEMA_NAME = "jobs"
metadata = MetaData()
