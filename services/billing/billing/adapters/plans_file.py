"""The plan catalog as configuration: a JSON list of plans, built in unless PLANS_FILE names another."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from billing.domain.plans import Plan

BUILTIN = Path(__file__).resolve().parent.parent / "plans.json"


class PlansFileError(Exception):
    """The plans file is malformed; the message names the file, the plan and the field."""


def load_plans(path: Path) -> list[Plan]:
    """Reads every plan of a plans file."""
    try:
        raw: list[dict[str, Any]] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlansFileError(f"{path}: {exc}") from None
    plans = []
    for index, item in enumerate(raw):
        try:
            plans.append(Plan(**{**item, "features": tuple(item.get("features", ()))}))
        except TypeError as exc:
            raise PlansFileError(f"{path} plan {index}: {exc}") from None
    return plans
