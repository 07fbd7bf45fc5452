"""Use cases of the plan catalog: look one up, list them, and the plan that applies to an owner."""

from __future__ import annotations

from collections.abc import Sequence

from billing.domain.plans import Plan
from servicekit import errors

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class PlanCatalog:
    """The plans on offer, purchasable ones first by ascending price, and the default plan."""

    def __init__(self, plans: Sequence[Plan], default_plan: str) -> None:
        self.plans = tuple(sorted(plans, key=lambda p: (not p.purchasable, p.price_minor_units, p.plan_id)))
        self.default = self.get(default_plan)

    def get(self, plan_id: str) -> Plan:
        """The plan `plan_id`; NotFound (PLAN_NOT_FOUND) otherwise."""
        for plan in self.plans:
            if plan.plan_id == plan_id:
                return plan
        raise errors.NotFound(
            f"plan {plan_id!r} does not exist", reason="PLAN_NOT_FOUND", metadata={"plan": plan_id}
        )

    def plan_of(self, owner: str) -> Plan:
        """The plan whose quota applies to `owner`: the default plan until paid subscriptions exist."""
        return self.default

    def page(self, page_size: int, page_token: str, show_retired: bool) -> tuple[list[Plan], str]:
        """One page of plans; the token is the offset of the next page."""
        if page_size < 0:
            raise errors.InvalidArgument(
                "page_size must not be negative",
                reason="FIELD_INVALID",
                violations=(errors.FieldViolation("page_size", "must be >= 0"),),
            )
        if page_token and not page_token.isdigit():
            raise errors.InvalidArgument(
                "page_token is not one this service issued",
                reason="PAGE_TOKEN_INVALID",
                violations=(errors.FieldViolation("page_token", "unknown token"),),
            )
        offset = int(page_token or 0)
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        visible = [p for p in self.plans if show_retired or p.purchasable]
        page = visible[offset : offset + size]
        return page, str(offset + size) if offset + size < len(visible) else ""
