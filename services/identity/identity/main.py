"""How the identity service runs: its settings, its composition root and its schema."""

from __future__ import annotations

from servicekit.cli import Schema, ServiceMain

from identity.adapters.tables import SCHEMA_NAME
from identity.bootstrap import build
from identity.settings import IdentitySettings

SCHEMA = Schema(package="identity", name=SCHEMA_NAME)

main = ServiceMain(IdentitySettings, build, SCHEMA)
