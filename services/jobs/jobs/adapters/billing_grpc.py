"""The billing context's usage ledger over gRPC, called as the jobs service (a service principal)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.rpc import status_pb2

from comfyapi.billing.v1 import billing_service_pb2 as pb
from comfyapi.billing.v1 import billing_service_pb2_grpc as pb_grpc
from servicekit import auth, context, errors, status

SERVICE = auth.service_principal("jobs")


class GrpcBilling:
    """Reserve, commit and release, each keyed by job and safe to repeat."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 10.0) -> None:
        self.stub = pb_grpc.BillingServiceStub(channel)
        self.timeout = timeout

    async def _call(self, method: str, request: object) -> Any:
        with context.bound(context.request_id(), SERVICE):
            try:
                return await getattr(self.stub, method)(request, timeout=self.timeout)
            except grpc.aio.AioRpcError as exc:
                error = status.from_rpc_error(exc)
                if isinstance(error, errors.Unavailable | errors.DeadlineExceeded | errors.Internal):
                    raise errors.Unavailable(
                        "billing does not answer; retry shortly",
                        reason="BILLING_UNAVAILABLE",
                        retry_after=error.retry_after or 1.0,
                    ) from None
                raise error from None

    async def reserve(self, jobs: Sequence[tuple[str, str]]) -> list[errors.DomainError | None]:
        requests = [
            pb.ReserveUsageRequest(owner=owner, job=job, units=1, request_id=job) for owner, job in jobs
        ]
        answer = await self._call("BatchReserveUsage", pb.BatchReserveUsageRequest(requests=requests))
        return [
            status.from_status(status_pb2.Status.FromString(result.refusal))
            if result.HasField("refusal")
            else None
            for result in answer.results
        ]

    async def commit(self, owner: str, job: str) -> None:
        await self._call(
            "CommitUsage", pb.CommitUsageRequest(owner=owner, job=job, request_id=f"{job}:commit")
        )

    async def release(self, owner: str, job: str) -> None:
        await self._call(
            "ReleaseUsage", pb.ReleaseUsageRequest(owner=owner, job=job, request_id=f"{job}:release")
        )
