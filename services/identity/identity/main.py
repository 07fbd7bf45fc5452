"""How the identity service runs: its settings, its composition root, its schema and its own commands."""

from __future__ import annotations

from identity.adapters.tables import SCHEMA_NAME
from identity.bootstrap import build
from identity.commands import COMMANDS
from identity.settings import IdentitySettings
from servicekit.cli import Schema, ServiceMain

SCHEMA = Schema(package="identity", name=SCHEMA_NAME)

main = ServiceMain(IdentitySettings, build, SCHEMA, COMMANDS)
