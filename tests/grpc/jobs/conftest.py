"""A jobs service wired to the real billing service and a scripted inference service, each on a real port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from comfyapi.billing.v1 import billing_service_pb2 as billing_pb
from comfyapi.billing.v1 import billing_service_pb2_grpc as billing_grpc
from comfyapi.jobs.v1 import jobs_service_pb2_grpc as pb_grpc
from servicekit import context
from servicekit.auth import service_principal
from tests.support.fake_inference import FakeInference, fake_inference_app
from tests.support.servers import running_service, serving

QUOTA = 6


def principal(user: str, scopes: str = "jobs:read jobs:write usage:read") -> context.Principal:
    return context.Principal(subject=f"users/{user}", kind="api_key", scopes=frozenset(scopes.split()))


def as_user(user: str, scopes: str = "jobs:read jobs:write usage:read") -> list[tuple[str, str]]:
    return [(context.PRINCIPAL_KEY, principal(user, scopes).to_header())]


@dataclass
class JobsHarness:
    jobs: pb_grpc.JobServiceStub
    billing: billing_grpc.BillingServiceStub
    inference: FakeInference

    async def usage(self, user: str) -> tuple[int, int]:
        reply = await self.billing.GetUsage(
            billing_pb.GetUsageRequest(owner=f"users/{user}"),
            metadata=[(context.PRINCIPAL_KEY, service_principal("test").to_header())],
        )
        return reply.usage.used_units, reply.usage.reserved_units


@pytest.fixture
async def harness(database_url: str, clean_redis: str, tmp_path: Path) -> AsyncIterator[JobsHarness]:
    plans = [{"plan_id": "test", "display_name": "Test", "description": "Small.", "monthly_job_quota": QUOTA}]
    (tmp_path / "plans.json").write_text(json.dumps(plans))
    fake = FakeInference()
    async with (
        running_service(
            "billing", database_url, clean_redis, plans_file=str(tmp_path / "plans.json"), default_plan="test"
        ) as billing,
        serving(fake_inference_app(fake)) as inference,
        running_service(
            "jobs",
            database_url,
            clean_redis,
            billing_addr=f"127.0.0.1:{billing.port}",
            inference_addr=f"127.0.0.1:{inference.port}",
            lease_seconds="1.5",
            max_running_per_owner="1",
            dispatch_concurrency="1",
        ) as jobs,
        grpc.aio.insecure_channel(f"127.0.0.1:{jobs.port}") as jobs_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{billing.port}") as billing_channel,
    ):
        yield JobsHarness(
            pb_grpc.JobServiceStub(jobs_channel), billing_grpc.BillingServiceStub(billing_channel), fake
        )
