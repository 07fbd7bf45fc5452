"""The composition root of the billing service: builds engines, adapters and servicers.

Nothing runs at import time.
"""

from __future__ import annotations

from pathlib import Path

from billing.adapters.ledger_sql import SqlLedgerStore
from billing.adapters.plans_file import BUILTIN, load_plans
from billing.adapters.tables import SCHEMA_NAME
from billing.api.servicer import registration
from billing.service.ledger import Ledger
from billing.service.plans import PlanCatalog
from billing.settings import BillingSettings
from servicekit import db
from servicekit.server import ServiceApp


async def build(settings: BillingSettings) -> ServiceApp:
    """Wires the service for `settings`."""
    engine = db.create_engine(settings.database_url, SCHEMA_NAME)
    plans = PlanCatalog(
        load_plans(Path(settings.plans_file) if settings.plans_file else BUILTIN), settings.default_plan
    )
    ledger = Ledger(SqlLedgerStore(engine), plans.plan_of)
    return ServiceApp(
        name=settings.service_name,
        registrations=[registration(plans, ledger)],
        dependencies=[db.dependency(engine)],
        closers=[engine.dispose],
    )
