"""How the jobs service runs: its settings, its composition root and its schema."""

from __future__ import annotations

from jobs.adapters.tables import SCHEMA_NAME
from jobs.bootstrap import build
from jobs.settings import JobsSettings
from servicekit.cli import Schema, ServiceMain

SCHEMA = Schema(package="jobs", name=SCHEMA_NAME)

main = ServiceMain(JobsSettings, build, SCHEMA)
