"""A stack of real processes to crash: billing, inference and jobs run as `python -m <pkg> serve` children
on fixed free ports against the test PostgreSQL and Redis, and the local CPU runtime runs as its own process
(as a ComfyUI sidecar would), so killing the inference service leaves the backend and its running prompt
alive.

A loopback webhook receiver records every delivery; the database is read directly to check what a crash must
never leave behind (a second commit, a second webhook, a leaked reservation).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import grpc
import pytest
from aiohttp import web
from sqlalchemy.engine import make_url

from comfyapi.billing.v1 import billing_service_pb2 as billing_pb
from comfyapi.billing.v1 import billing_service_pb2_grpc as billing_grpc
from comfyapi.jobs.v1 import job_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as pb
from comfyapi.jobs.v1 import jobs_service_pb2_grpc as pb_grpc
from inference.adapters.local_runtime import LocalRuntime
from servicekit import context
from servicekit.auth import service_principal
from tests.support.infra import free_port
from tests.support.processes import ServiceProcess
from tests.support.tcp_proxy import TcpProxy

T = TypeVar("T")
WORKFLOWS = Path("/work/shared/reference/comfy-workflows")
SCOPES = "jobs:read jobs:write webhooks:manage usage:read"
TERMINAL = {
    job_pb2.JOB_STATE_SUCCEEDED,
    job_pb2.JOB_STATE_FAILED,
    job_pb2.JOB_STATE_CANCELLED,
    job_pb2.JOB_STATE_EXPIRED,
}
LEASE_SECONDS = 3.0
# Generous: a loaded 2-core machine runs the 13 s blur workflow and restarts a service in well under this.
SETTLE_SECONDS = 150.0


def slow_workflow() -> str:
    """Three 31-pixel blurs of a 3072x3072 image: about 13 s on one core of this machine, node by node."""
    return (WORKFLOWS / "slow_big_blur.json").read_text()


def tiny_workflow() -> str:
    """A 64x64 empty image saved: a few milliseconds."""
    return (WORKFLOWS / "tiny_empty_save.json").read_text()


def as_user(user: str = "alice") -> list[tuple[str, str]]:
    principal = context.Principal(subject=f"users/{user}", kind="api_key", scopes=frozenset(SCOPES.split()))
    return [(context.PRINCIPAL_KEY, principal.to_header())]


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str, timeout: float = SETTLE_SECONDS
) -> T:
    """Polls `probe` until `done` holds for its result; fails naming `what` and the last result."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            last: Any = await probe()
        except grpc.aio.AioRpcError as exc:  # a service restarting: ask again
            last = exc
        else:
            if done(last):
                return last  # type: ignore[no-any-return]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s; last seen: {last!r}")
        await asyncio.sleep(0.1)


@dataclass
class Receiver:
    """A developer's webhook endpoint on loopback: answers 200, records (event id, type, job) per request."""

    port: int = field(default_factory=free_port)
    received: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        event = json.loads(await request.text())
        self.received.append((request.headers["webhook-id"], event["type"], event["job"]["name"]))
        return web.Response(text="ok")

    def of_job(self, job: str) -> list[tuple[str, str, str]]:
        return [r for r in self.received if r[2] == job]


@dataclass
class Stack:
    """The running processes, clients of them, and direct reads of what they stored."""

    runtime: LocalRuntime
    billing: ServiceProcess
    inference: ServiceProcess
    jobs: ServiceProcess
    receiver: Receiver
    database_url: str
    redis_url: str
    stub: pb_grpc.JobServiceStub
    billing_stub: billing_grpc.BillingServiceStub
    billing_proxy: TcpProxy | None = None

    # -- the user's view -------------------------------------------------------------------------------

    async def create(self, workflow: str, request_id: str = "", webhook: bool = True) -> job_pb2.Job:
        request = pb.CreateJobRequest(request_id=request_id, workflow_json=workflow)
        if webhook:
            request.webhook.url = self.receiver.url
        return (await self.stub.CreateJob(request, metadata=as_user(), timeout=30)).job

    async def get(self, name: str) -> job_pb2.Job:
        return (await self.stub.GetJob(pb.GetJobRequest(name=name), metadata=as_user(), timeout=10)).job

    async def list_jobs(self) -> list[job_pb2.Job]:
        return list((await self.stub.ListJobs(pb.ListJobsRequest(), metadata=as_user(), timeout=10)).jobs)

    async def finished(self, name: str) -> job_pb2.Job:
        return await eventually(lambda: self.get(name), lambda j: j.state in TERMINAL, f"{name} to end")

    async def usage(self) -> tuple[int, int]:
        reply = await self.billing_stub.GetUsage(
            billing_pb.GetUsageRequest(owner="users/alice"),
            metadata=[(context.PRINCIPAL_KEY, service_principal("test").to_header())],
            timeout=10,
        )
        return reply.usage.used_units, reply.usage.reserved_units

    # -- what was stored ---------------------------------------------------------------------------------

    async def query(self, sql: str, *args: object) -> list[asyncpg.Record]:
        url = make_url(self.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(url)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    async def reservations(self, job_name: str) -> list[str]:
        rows = await self.query("SELECT state FROM billing.reservations WHERE job = $1", job_name)
        return [r["state"] for r in rows]

    async def outbox(self, job_id: str) -> list[asyncpg.Record]:
        return await self.query(
            "SELECT topic, key, done_time FROM jobs.outbox WHERE key = $1 OR key LIKE $2 ORDER BY id",
            job_id,
            f"{job_id}:%",
        )

    async def deliveries(self, job_id: str) -> list[asyncpg.Record]:
        return await self.query(
            "SELECT event_id, event_type, state FROM jobs.webhook_deliveries WHERE job_id = $1::uuid",
            job_id,
        )

    async def settled(self, job: job_pb2.Job) -> None:
        """Waits until every side effect the job owes is done: outbox drained, webhook delivered."""
        job_id = job.name.removeprefix("jobs/")

        async def pending() -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
            return await self.outbox(job_id), await self.deliveries(job_id)

        await eventually(
            pending,
            lambda found: (
                bool(found[0])
                and all(r["done_time"] is not None for r in found[0])
                and all(d["state"] in ("succeeded", "failed") for d in found[1])
            ),
            f"the side effects of {job.name} to settle",
        )

    async def runtime_history(self) -> dict[str, Any]:
        """Every prompt the backend ran, by prompt id (the runtime keeps them in memory)."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.runtime.url}/history") as reply:
            return dict(await reply.json())

    async def runtime_running(self) -> list[str]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.runtime.url}/queue") as reply:
            body = await reply.json()
        return [item[1] for item in body["queue_running"]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hooks.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hooks.port).start()
    yield hooks
    await runner.cleanup()


async def start_stack(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    receiver: Receiver,
    billing_proxy: bool = False,
    **jobs_env: str,
) -> AsyncIterator[Stack]:
    """Starts the runtime and the three services; stops (and kills) them all when the block ends."""
    plans = [{"plan_id": "test", "display_name": "Test", "description": "Ample.", "monthly_job_quota": 100}]
    (tmp_path / "plans.json").write_text(json.dumps(plans))
    logs = tmp_path / "logs"
    runtime = LocalRuntime(tmp_path / "runtime")
    await runtime.start()
    billing = ServiceProcess(
        "billing",
        {"DATABASE_URL": database_url, "PLANS_FILE": str(tmp_path / "plans.json"), "DEFAULT_PLAN": "test"},
        logs,
    )
    inference = ServiceProcess(
        "inference",
        {
            "COMFYUI_URLS": f"local={runtime.url}",
            "STORAGE_DIR": str(tmp_path / "storage"),
            "PROBE_INTERVAL_SECONDS": "0.3",
            "COMFYUI_SILENCE_SECONDS": "2",
        },
        logs,
    )
    proxy: TcpProxy | None = None
    processes = [billing, inference]
    try:
        await asyncio.gather(billing.start(), inference.start())
        if billing_proxy:
            proxy = TcpProxy(billing.port)
            await proxy.start()
        jobs = ServiceProcess(
            "jobs",
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "BILLING_ADDR": proxy.address if proxy else billing.address,
                "INFERENCE_ADDR": inference.address,
                "LEASE_SECONDS": str(LEASE_SECONDS),
                "WEBHOOK_SECRET_KEYS": "v1:" + base64.b64encode(b"k" * 32).decode(),
                "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
                "WEBHOOK_RETRY_DELAYS": "0.5,0.5,0.5",
                **{k.upper(): v for k, v in jobs_env.items()},
            },
            logs,
        )
        processes.append(jobs)
        await jobs.start()
        async with (
            grpc.aio.insecure_channel(jobs.address) as jobs_channel,
            grpc.aio.insecure_channel(billing.address) as billing_channel,
        ):
            stack = Stack(
                runtime,
                billing,
                inference,
                jobs,
                receiver,
                database_url,
                redis_url,
                pb_grpc.JobServiceStub(jobs_channel),
                billing_grpc.BillingServiceStub(billing_channel),
                proxy,
            )
            await stack.stub.RotateWebhookSecret(pb.RotateWebhookSecretRequest(), metadata=as_user())
            yield stack
    finally:
        if proxy is not None:
            proxy.release()
        await asyncio.gather(*(p.stop() for p in reversed(processes)))
        if proxy is not None:
            await proxy.close()
        await runtime.stop()


@pytest.fixture
async def stack(
    tmp_path: Path, database_url: str, clean_redis: str, receiver: Receiver
) -> AsyncIterator[Stack]:
    async for running in start_stack(tmp_path, database_url, clean_redis, receiver):
        yield running
