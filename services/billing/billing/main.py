"""How the billing service runs: its settings, its composition root and its schema."""

from __future__ import annotations

from billing.adapters.tables import SCHEMA_NAME
from billing.bootstrap import build
from billing.settings import BillingSettings
from servicekit.cli import Schema, ServiceMain

SCHEMA = Schema(package="billing", name=SCHEMA_NAME)

main = ServiceMain(BillingSettings, build, SCHEMA)
