"""How the identity service runs: its settings, its composition root and its schema."""

from __future__ import annotations

from identity.adapters.tables import SCHEMA_NAME
from identity.bootstrap import build
from identity.settings import IdentitySettings
from servicekit.cli import Schema, ServiceMain

SCHEMA = Schema(package="identity", name=SCHEMA_NAME)

main = ServiceMain(IdentitySettings, build, SCHEMA)
