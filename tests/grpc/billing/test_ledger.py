"""The usage ledger through BillingService on a real port with real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.rpc import status_pb2

from comfyapi.billing.v1 import billing_service_pb2 as pb
from comfyapi.billing.v1 import billing_service_pb2_grpc as pb_grpc
from comfyapi.billing.v1 import usage_pb2
from servicekit import context, errors, status
from servicekit.auth import service_principal
from tests.support.servers import running_service

JOBS_SERVICE = service_principal("jobs")
ALICE = context.Principal(subject="users/alice", kind="api_key", scopes=frozenset({"usage:read"}))
BOB = context.Principal(subject="users/bob", kind="api_key", scopes=frozenset({"usage:read"}))


def metadata(principal: context.Principal) -> list[tuple[str, str]]:
    return [(context.PRINCIPAL_KEY, principal.to_header())]


@pytest.fixture
async def billing(
    database_url: str, clean_redis: str, tmp_path: Path
) -> AsyncIterator[pb_grpc.BillingServiceStub]:
    plans = [
        {"plan_id": "tiny", "display_name": "Tiny", "description": "Three jobs.", "monthly_job_quota": 3},
        {
            "plan_id": "big",
            "display_name": "Big",
            "description": "Many jobs.",
            "monthly_job_quota": 1000,
            "price_minor_units": 500,
        },
        {
            "plan_id": "old",
            "display_name": "Old",
            "description": "Retired.",
            "monthly_job_quota": 5,
            "purchasable": False,
        },
    ]
    (tmp_path / "plans.json").write_text(json.dumps(plans))
    async with (
        running_service(
            "billing", database_url, clean_redis, plans_file=str(tmp_path / "plans.json"), default_plan="tiny"
        ) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        yield pb_grpc.BillingServiceStub(channel)


async def reserve(
    stub: pb_grpc.BillingServiceStub, job: str, owner: str = "users/alice"
) -> pb.ReserveUsageResponse:
    request = pb.ReserveUsageRequest(owner=owner, job=job, units=1, request_id=f"req-{job}")
    return await stub.ReserveUsage(request, metadata=metadata(JOBS_SERVICE))


async def usage_of(stub: pb_grpc.BillingServiceStub, principal: context.Principal) -> usage_pb2.Usage:
    return (await stub.GetUsage(pb.GetUsageRequest(), metadata=metadata(principal))).usage


async def test_a_reservation_counts_against_the_quota_until_released(
    billing: pb_grpc.BillingServiceStub,
) -> None:
    first = await reserve(billing, "jobs/1")
    assert first.reservation.state == usage_pb2.RESERVATION_STATE_RESERVED
    assert (first.usage.reserved_units, first.usage.available_units) == (1, 2)

    await billing.ReleaseUsage(
        pb.ReleaseUsageRequest(owner="users/alice", job="jobs/1", request_id="r"),
        metadata=metadata(JOBS_SERVICE),
    )
    usage = await usage_of(billing, ALICE)
    assert (usage.used_units, usage.reserved_units, usage.available_units) == (0, 0, 3)


async def test_committed_units_are_used_and_a_retry_never_charges_twice(
    billing: pb_grpc.BillingServiceStub,
) -> None:
    await reserve(billing, "jobs/2")
    again = await reserve(billing, "jobs/2")
    commit = pb.CommitUsageRequest(owner="users/alice", job="jobs/2", request_id="c")
    await billing.CommitUsage(commit, metadata=metadata(JOBS_SERVICE))
    await billing.CommitUsage(commit, metadata=metadata(JOBS_SERVICE))
    usage = await usage_of(billing, ALICE)
    assert again.usage.reserved_units == 1
    assert (usage.used_units, usage.reserved_units) == (1, 0)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await billing.ReleaseUsage(
            pb.ReleaseUsageRequest(owner="users/alice", job="jobs/2", request_id="x"),
            metadata=metadata(JOBS_SERVICE),
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert status.from_rpc_error(raised.value).reason == "RESERVATION_COMMITTED"


async def test_over_quota_is_resource_exhausted_with_the_reset_time(
    billing: pb_grpc.BillingServiceStub,
) -> None:
    for job in ("jobs/a", "jobs/b", "jobs/c"):
        await reserve(billing, job)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await reserve(billing, "jobs/d")
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    error = status.from_rpc_error(raised.value)
    assert error.reason == "QUOTA_EXCEEDED"
    assert error.metadata["quota_units"] == "3"
    assert error.metadata["reset_time"].endswith("T00:00:00Z")
    assert error.retry_after is not None
    assert error.retry_after > 0
    assert (await reserve(billing, "jobs/a")).reservation.job == "jobs/a", "a repeat still answers"
    assert (await usage_of(billing, BOB)).available_units == 3, "another owner's quota is untouched"


async def test_concurrent_admissions_never_exceed_the_quota(billing: pb_grpc.BillingServiceStub) -> None:
    results = await asyncio.gather(
        *(reserve(billing, f"jobs/c{i}") for i in range(12)), return_exceptions=True
    )
    admitted = [r for r in results if isinstance(r, pb.ReserveUsageResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(admitted) == 3
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert (await usage_of(billing, ALICE)).reserved_units == 3


async def reserve_batch(
    stub: pb_grpc.BillingServiceStub, items: list[tuple[str, str]]
) -> list[pb.ReserveUsageResponse | errors.DomainError]:
    requests = [pb.ReserveUsageRequest(owner=o, job=j, units=1, request_id=f"req-{j}") for o, j in items]
    answer = await stub.BatchReserveUsage(
        pb.BatchReserveUsageRequest(requests=requests), metadata=metadata(JOBS_SERVICE)
    )
    return [
        result.reserved
        if result.HasField("reserved")
        else status.from_status(status_pb2.Status.FromString(result.refusal))
        for result in answer.results
    ]


async def test_a_batch_judges_each_reservation_on_its_own(billing: pb_grpc.BillingServiceStub) -> None:
    await reserve(billing, "jobs/x")
    items = [("users/alice", f"jobs/b{i}") for i in range(3)]
    items[1:1] = [("users/bob", "jobs/x"), ("users/bob", "jobs/y"), ("users/alice", "jobs/x")]
    results = await reserve_batch(billing, items)

    assert [r.reservation.job if isinstance(r, pb.ReserveUsageResponse) else r.reason for r in results] == [
        "jobs/b0",
        "RESERVATION_MISMATCH",
        "jobs/y",
        "jobs/x",
        "jobs/b1",
        "QUOTA_EXCEEDED",
    ]
    exhausted = results[-1]
    assert isinstance(exhausted, errors.ResourceExhausted)
    assert exhausted.metadata["quota_units"] == "3"
    assert exhausted.retry_after is not None
    assert (await usage_of(billing, ALICE)).reserved_units == 3
    assert (await usage_of(billing, BOB)).reserved_units == 1


async def test_a_malformed_batch_names_the_item_and_reserves_nothing(
    billing: pb_grpc.BillingServiceStub,
) -> None:
    requests = [
        pb.ReserveUsageRequest(owner="users/alice", job="jobs/1", request_id="r"),
        pb.ReserveUsageRequest(owner="users/alice", job="2", request_id="r"),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await billing.BatchReserveUsage(
            pb.BatchReserveUsageRequest(requests=requests), metadata=metadata(JOBS_SERVICE)
        )
    assert status.from_rpc_error(malformed.value).violations[0].field == "requests[1].job"
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await billing.BatchReserveUsage(
            pb.BatchReserveUsageRequest(requests=requests[:1] * 101), metadata=metadata(JOBS_SERVICE)
        )
    assert status.from_rpc_error(too_many.value).reason == "BATCH_TOO_LARGE"
    assert (await usage_of(billing, ALICE)).reserved_units == 0


async def test_the_same_job_with_another_owner_is_a_conflict(billing: pb_grpc.BillingServiceStub) -> None:
    await reserve(billing, "jobs/x")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await reserve(billing, "jobs/x", owner="users/bob")
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert status.from_rpc_error(raised.value).reason == "RESERVATION_MISMATCH"


async def test_a_dropped_database_connection_fails_one_call_as_unavailable_and_the_next_works(
    billing: pb_grpc.BillingServiceStub, database_url: str
) -> None:
    await reserve(billing, "jobs/1")
    admin = await asyncpg.connect(database_url)
    try:
        dropped = await admin.fetchval(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity "
            "where application_name = 'billing' and datname = current_database()"
        )
    finally:
        await admin.close()
    assert dropped >= 1
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await usage_of(billing, ALICE)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert status.from_rpc_error(raised.value).reason == "DATABASE_UNAVAILABLE"
    assert (await usage_of(billing, ALICE)).reserved_units == 1


async def test_only_services_move_units(billing: pb_grpc.BillingServiceStub) -> None:
    request = pb.ReserveUsageRequest(owner="users/alice", job="jobs/1", units=1, request_id="r")
    with pytest.raises(grpc.aio.AioRpcError) as as_user:
        await billing.ReserveUsage(request, metadata=metadata(ALICE))
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await billing.ReserveUsage(request)
    assert as_user.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert status.from_rpc_error(as_user.value).reason == "SERVICE_ONLY"
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_user_sees_only_their_own_usage(billing: pb_grpc.BillingServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await billing.GetUsage(pb.GetUsageRequest(owner="users/bob"), metadata=metadata(ALICE))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    no_scope = context.Principal(subject="users/alice", kind="api_key", scopes=frozenset({"jobs:read"}))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await billing.GetUsage(pb.GetUsageRequest(), metadata=metadata(no_scope))
    assert status.from_rpc_error(denied.value).metadata == {"scope": "usage:read"}


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"owner": "alice", "job": "jobs/1", "request_id": "r"}, "owner"),
        ({"owner": "users/alice", "job": "1", "request_id": "r"}, "job"),
        ({"owner": "users/alice", "job": "jobs/1", "request_id": ""}, "request_id"),
        ({"owner": "users/alice", "job": "jobs/1", "request_id": "r", "units": -2}, "units"),
    ],
)
async def test_malformed_reservations_name_the_field_and_write_nothing(
    billing: pb_grpc.BillingServiceStub, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await billing.ReserveUsage(pb.ReserveUsageRequest(**request_fields), metadata=metadata(JOBS_SERVICE))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert status.from_rpc_error(raised.value).violations[0].field == field
    assert (await usage_of(billing, ALICE)).reserved_units == 0


async def test_plans_are_listed_purchasable_first_by_price(billing: pb_grpc.BillingServiceStub) -> None:
    listed = await billing.ListPlans(pb.ListPlansRequest())
    everything = await billing.ListPlans(pb.ListPlansRequest(show_retired=True))
    assert [p.plan_id for p in listed.plans] == ["tiny", "big"]
    assert [p.plan_id for p in everything.plans] == ["tiny", "big", "old"]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await billing.GetPlan(pb.GetPlanRequest(name="plans/none"))
    assert status.from_rpc_error(raised.value).reason == "PLAN_NOT_FOUND"
