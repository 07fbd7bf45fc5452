"""SQLAlchemy table metadata of the drive_sync schema; tables are created through search_path."""

from __future__ import annotations

from sqlalchemy import MetaData

SCHEMA_NAME = "drive_sync"
metadata = MetaData()
