"""The gRPC face of the billing service: thin servicers converting between protos and domain values."""

from __future__ import annotations

from comfyapi.billing.v1 import billing_service_pb2 as pb
from comfyapi.billing.v1 import billing_service_pb2_grpc as pb_grpc
from servicekit.server import Registration, fill_unimplemented

DESCRIPTOR = pb.DESCRIPTOR.services_by_name["BillingService"]


@fill_unimplemented(DESCRIPTOR, "plans, Stripe and the usage ledger arrive with the jobs and billing work")
class BillingServiceServicer(pb_grpc.BillingServiceServicer):
    """Answers the BillingService contract."""


def registration() -> Registration:
    """The servicer with the generated function that mounts it on a server."""
    return Registration(DESCRIPTOR, BillingServiceServicer(), pb_grpc.add_BillingServiceServicer_to_server)
