"""How the drive-sync service runs: its settings, its composition root and its schema."""

from __future__ import annotations

from drive_sync.adapters.tables import SCHEMA_NAME
from drive_sync.bootstrap import build
from drive_sync.settings import DriveSyncSettings
from servicekit.cli import Schema, ServiceMain

SCHEMA = Schema(package="drive_sync", name=SCHEMA_NAME)

main = ServiceMain(DriveSyncSettings, build, SCHEMA)
