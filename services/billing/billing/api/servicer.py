"""The gRPC face of the billing service: thin servicers converting between protos and domain values."""

from __future__ import annotations

from typing import Any

import grpc

from billing.api.convert import (
    free_subscription,
    plan_to_proto,
    reservation_to_proto,
    reserved_to_proto,
    usage_to_proto,
)
from billing.domain.usage import ReservationState
from billing.service.ledger import Ledger, Wanted
from billing.service.plans import PlanCatalog
from comfyapi.billing.v1 import billing_service_pb2 as pb
from comfyapi.billing.v1 import billing_service_pb2_grpc as pb_grpc
from servicekit import auth, errors, status
from servicekit.server import Registration, fill_unimplemented

DESCRIPTOR = pb.DESCRIPTOR.services_by_name["BillingService"]
Context = grpc.aio.ServicerContext[Any, Any]
USAGE_READ = "usage:read"
MAX_BATCH = 100


def _name(value: str, prefix: str, field: str) -> str:
    """Checks that `value` is a resource name `{prefix}/{id}` and returns it."""
    head, _, rest = value.partition("/")
    if head != prefix or not rest or "/" in rest:
        raise errors.InvalidArgument(
            f"{field} must look like {prefix}/{{id}}, got {value!r}",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation(field, f"expected {prefix}/{{id}}"),),
        )
    return value


def _required(value: str, field: str) -> str:
    if not value:
        raise errors.InvalidArgument(
            f"{field} is required",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation(field, "required"),),
        )
    return value


def _wanted(request: pb.ReserveUsageRequest, field: str = "") -> Wanted:
    """The reservation a request asks for; `field` prefixes the field names of its violations."""
    if request.units < 0:
        raise errors.InvalidArgument(
            "units must be at least 1",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation(f"{field}units", "must be >= 1"),),
        )
    return Wanted(
        owner=_name(request.owner, "users", f"{field}owner"),
        job=_name(request.job, "jobs", f"{field}job"),
        units=request.units or 1,
        request_id=_required(request.request_id, f"{field}request_id"),
    )


def _owner(requested: str) -> str:
    """The owner a user-facing read is about: the caller, or the named user for a service caller."""
    caller = auth.require_principal()
    auth.require_scope(caller, USAGE_READ)
    if auth.is_service(caller):
        return _name(_required(requested, "owner"), "users", "owner")
    if requested and requested != caller.subject:
        raise errors.NotFound(
            f"{requested} has no billing record visible to the caller", reason="OWNER_NOT_FOUND"
        )
    return caller.subject


@fill_unimplemented(
    DESCRIPTOR, "Stripe Checkout, the Customer Portal and webhooks arrive with the Stripe work"
)
class BillingServiceServicer(pb_grpc.BillingServiceServicer):
    """Answers the BillingService contract."""

    def __init__(self, plans: PlanCatalog, ledger: Ledger) -> None:
        self.plans = plans
        self.ledger = ledger

    async def ListPlans(self, request: pb.ListPlansRequest, context: Context) -> pb.ListPlansResponse:
        page, token = self.plans.page(request.page_size, request.page_token, request.show_retired)
        return pb.ListPlansResponse(plans=[plan_to_proto(p) for p in page], next_page_token=token)

    async def GetPlan(self, request: pb.GetPlanRequest, context: Context) -> pb.GetPlanResponse:
        plan_id = _name(request.name, "plans", "name").removeprefix("plans/")
        return pb.GetPlanResponse(plan=plan_to_proto(self.plans.get(plan_id)))

    async def GetSubscription(
        self, request: pb.GetSubscriptionRequest, context: Context
    ) -> pb.GetSubscriptionResponse:
        owner = _owner(request.owner)
        subscription = free_subscription(owner, self.plans.plan_of(owner), self.ledger.period(owner))
        return pb.GetSubscriptionResponse(subscription=subscription)

    async def GetUsage(self, request: pb.GetUsageRequest, context: Context) -> pb.GetUsageResponse:
        return pb.GetUsageResponse(usage=usage_to_proto(await self.ledger.usage(_owner(request.owner))))

    async def ReserveUsage(
        self, request: pb.ReserveUsageRequest, context: Context
    ) -> pb.ReserveUsageResponse:
        auth.require_service()
        (outcome,) = await self.ledger.reserve([_wanted(request)])
        if isinstance(outcome, errors.DomainError):
            raise outcome
        return reserved_to_proto(*outcome)

    async def BatchReserveUsage(
        self, request: pb.BatchReserveUsageRequest, context: Context
    ) -> pb.BatchReserveUsageResponse:
        auth.require_service()
        if not 1 <= len(request.requests) <= MAX_BATCH:
            raise errors.InvalidArgument(
                f"a batch holds 1 to {MAX_BATCH} requests, got {len(request.requests)}",
                reason="BATCH_TOO_LARGE" if request.requests else "FIELD_INVALID",
                violations=(errors.FieldViolation("requests", f"1 to {MAX_BATCH} items"),),
            )
        wanted = [_wanted(item, f"requests[{i}].") for i, item in enumerate(request.requests)]
        results = [
            pb.ReserveUsageResult(refusal=status.to_status(outcome).SerializeToString())
            if isinstance(outcome, errors.DomainError)
            else pb.ReserveUsageResult(reserved=reserved_to_proto(*outcome))
            for outcome in await self.ledger.reserve(wanted)
        ]
        return pb.BatchReserveUsageResponse(results=results)

    async def CommitUsage(self, request: pb.CommitUsageRequest, context: Context) -> pb.CommitUsageResponse:
        reservation = await self._settle(request.owner, request.job, ReservationState.COMMITTED)
        return pb.CommitUsageResponse(reservation=reservation_to_proto(reservation))

    async def ReleaseUsage(
        self, request: pb.ReleaseUsageRequest, context: Context
    ) -> pb.ReleaseUsageResponse:
        reservation = await self._settle(request.owner, request.job, ReservationState.RELEASED)
        return pb.ReleaseUsageResponse(reservation=reservation_to_proto(reservation))

    async def _settle(self, owner: str, job: str, target: ReservationState) -> Any:
        auth.require_service()
        return await self.ledger.settle(_name(owner, "users", "owner"), _name(job, "jobs", "job"), target)


def registration(plans: PlanCatalog, ledger: Ledger) -> Registration:
    """The servicer with the generated function that mounts it on a server."""
    return Registration(
        DESCRIPTOR, BillingServiceServicer(plans, ledger), pb_grpc.add_BillingServiceServicer_to_server
    )
