"""Developer webhooks end to end over gRPC: a real jobs service (with real billing, PostgreSQL and Redis and a
scripted inference service) posting to a real HTTP receiver on loopback that verifies every signature with the
`standardwebhooks` reference library.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from comfyapi.billing.v1 import billing_service_pb2_grpc as billing_grpc
from comfyapi.jobs.v1 import job_pb2, webhook_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as pb
from comfyapi.jobs.v1 import jobs_service_pb2_grpc as pb_grpc
from jobs.adapters.job_store import SqlJobStore
from jobs.adapters.tables import SCHEMA_NAME, outbox
from jobs.adapters.webhook_store import SqlWebhookStore
from jobs.api.convert import render_event
from jobs.domain.effects import WEBHOOK
from jobs.service.ports import OutboxItem
from jobs.service.webhooks import Webhooks
from servicekit import db, status
from tests.grpc.jobs.conftest import QUOTA, JobsHarness, as_user
from tests.grpc.jobs.test_lifecycle import TERMINAL, create_request, wait_for_state
from tests.support.fake_inference import FakeInference, fake_inference_app
from tests.support.infra import free_port
from tests.support.servers import running_service, serving

SCOPES = "jobs:read jobs:write webhooks:manage"
SUCCEEDED = webhook_pb2.WEBHOOK_DELIVERY_STATE_SUCCEEDED
FAILED = webhook_pb2.WEBHOOK_DELIVERY_STATE_FAILED
REDELIVERIES_PER_HOUR = 3
RETRY_DELAYS = "0.1,0.1,0.1"  # four attempts a few tenths of a second apart instead of eight over a day


@dataclass
class Received:
    headers: dict[str, str]
    body: str

    @property
    def event(self) -> dict[str, object]:
        return dict(json.loads(self.body))

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")


@dataclass
class Receiver:
    """A developer's endpoint: records every request and answers from a script (200 when it runs out)."""

    port: int
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: requests wait before answering

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
        answer = self.script.pop(0) if self.script else 200
        await self.gate.wait()
        return web.Response(status=answer, text=f"answered {answer} " + "x" * 2000)

    def of_job(self, job_name: str) -> list[Received]:
        return [r for r in self.received if r.event["job"]["name"] == job_name]  # type: ignore[index]


@dataclass
class Hooks:
    jobs: pb_grpc.JobServiceStub
    harness: JobsHarness
    receiver: Receiver
    store: SqlWebhookStore


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver(free_port())
    hooks.gate.set()
    app = web.Application()
    app.router.add_post("/hook", hooks.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hooks.port).start()
    yield hooks
    await runner.cleanup()


@pytest.fixture
async def hooks(
    database_url: str, clean_redis: str, tmp_path: Path, receiver: Receiver
) -> AsyncIterator[Hooks]:
    plans = [{"plan_id": "test", "display_name": "Test", "description": "Small.", "monthly_job_quota": QUOTA}]
    (tmp_path / "plans.json").write_text(json.dumps(plans))
    fake = FakeInference()
    engine = db.create_engine(database_url, SCHEMA_NAME)
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
            webhook_secret_keys="v1:" + base64.b64encode(b"k" * 32).decode(),
            webhook_allowed_hosts="127.0.0.1",
            webhook_retry_delays=RETRY_DELAYS,
            webhook_redeliveries_per_hour=str(REDELIVERIES_PER_HOUR),
            webhook_timeout_seconds="2",
        ) as jobs,
        grpc.aio.insecure_channel(f"127.0.0.1:{jobs.port}") as jobs_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{billing.port}") as billing_channel,
    ):
        stub = pb_grpc.JobServiceStub(jobs_channel)
        harness = JobsHarness(stub, billing_grpc.BillingServiceStub(billing_channel), fake)
        yield Hooks(stub, harness, receiver, SqlWebhookStore(engine))
    await engine.dispose()


def user(name: str = "alice") -> list[tuple[str, str]]:
    return as_user(name, SCOPES)


async def rotate(h: Hooks, user_name: str = "alice", **fields: object) -> pb.RotateWebhookSecretResponse:
    return await h.jobs.RotateWebhookSecret(pb.RotateWebhookSecretRequest(**fields), metadata=user(user_name))


async def run_job(h: Hooks, url: str, events: tuple[str, ...] = (), owner: str = "alice") -> job_pb2.Job:
    webhook = job_pb2.WebhookConfig(url=url, events=events)
    created = (await h.jobs.CreateJob(create_request(owner, webhook=webhook), metadata=user(owner))).job
    done = await wait_for_state(h.harness, created.name, TERMINAL, owner)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED
    return done


async def deliveries(h: Hooks, job: str, owner: str = "alice") -> list[webhook_pb2.WebhookDelivery]:
    reply = await h.jobs.ListWebhookDeliveries(
        pb.ListWebhookDeliveriesRequest(parent=job), metadata=user(owner)
    )
    return list(reply.deliveries)


async def settled(
    h: Hooks, job: str, count: int = 1, done: Callable[[webhook_pb2.WebhookDelivery], bool] | None = None
) -> list[webhook_pb2.WebhookDelivery]:
    """The job's deliveries once `count` exist and every one is finished (or meets `done`)."""
    finished = done or (lambda d: d.state in (SUCCEEDED, FAILED))
    for _ in range(400):
        found = await deliveries(h, job)
        if len(found) >= count and all(finished(d) for d in found):
            return found
        await asyncio.sleep(0.025)
    raise AssertionError(f"deliveries of {job} never settled: {found}")


def verify(secret: str, received: Received, signature: str | None = None) -> dict[str, object]:
    """Verifies with the reference library; `signature` keeps only that one entry of the header."""
    headers = dict(received.headers)
    if signature is not None:
        headers["webhook-signature"] = signature
    return dict(Webhook(secret).verify(received.body, headers))


async def test_a_job_sends_exactly_one_signed_succeeded_event(hooks: Hooks) -> None:
    secret = (await rotate(hooks)).plaintext_secret
    job = await run_job(hooks, hooks.receiver.url)
    [delivery] = await settled(hooks, job.name)
    await asyncio.sleep(1.0)  # the relay and the sender poll every second or less: nothing more may come
    [received] = hooks.receiver.of_job(job.name)
    event = verify(secret, received)
    assert event["type"] == "job.succeeded"
    assert event["eventId"] == received.headers["webhook-id"] == delivery.event_id
    assert event["job"]["name"] == job.name  # type: ignore[index]
    assert event["job"]["state"] == "JOB_STATE_SUCCEEDED"  # type: ignore[index]
    assert event["job"]["outputs"][0]["filename"] == "out.png"  # type: ignore[index]
    assert abs(int(received.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 300
    assert (delivery.state, delivery.attempt, delivery.http_status) == (SUCCEEDED, 1, 200)
    assert delivery.event_type == "job.succeeded"
    assert delivery.url == hooks.receiver.url
    assert delivery.name.startswith(f"{job.name}/webhookDeliveries/")
    assert delivery.latency.ToTimedelta() > timedelta(0)
    assert len(delivery.response_excerpt.encode()) == 1024
    assert delivery.response_excerpt.startswith("answered")
    assert not delivery.HasField("next_attempt_time")
    assert not delivery.redelivery_of
    with pytest.raises(WebhookVerificationError):
        verify("whsec_" + base64.b64encode(b"s" * 32).decode(), received)
    tampered = Received(received.headers, received.body.replace("SUCCEEDED", "FAILED"))
    with pytest.raises(WebhookVerificationError):
        verify(secret, tampered)


async def test_failed_attempts_are_retried_and_every_attempt_is_logged(hooks: Hooks) -> None:
    secret = (await rotate(hooks)).plaintext_secret
    hooks.receiver.script[:] = [500, 500, 200]
    job = await run_job(hooks, hooks.receiver.url)
    [delivery] = await settled(hooks, job.name)
    assert (delivery.state, delivery.attempt, delivery.http_status) == (SUCCEEDED, 3, 200)
    received = hooks.receiver.of_job(job.name)
    assert len(received) == 3
    assert {r.headers["webhook-id"] for r in received} == {delivery.event_id}
    assert {r.body for r in received} == {received[0].body}
    for each in received:
        verify(secret, each)
    log = await hooks.store.attempts(delivery.name.rpartition("/")[2])
    assert [(a.attempt, a.outcome.http_status) for a in log] == [(1, 500), (2, 500), (3, 200)]
    assert all(a.outcome.latency is not None and a.outcome.latency > timedelta(0) for a in log)
    assert log[0].outcome.response_excerpt.startswith("answered 500")
    assert log[0].time < log[1].time < log[2].time


async def test_a_receiver_that_keeps_failing_ends_failed_after_the_schedule_and_410_stops_at_once(
    hooks: Hooks,
) -> None:
    await rotate(hooks)
    hooks.receiver.script[:] = [503] * 10
    job = await run_job(hooks, hooks.receiver.url)
    [delivery] = await settled(hooks, job.name)
    attempts = len(RETRY_DELAYS.split(",")) + 1
    assert (delivery.state, delivery.attempt, delivery.http_status) == (FAILED, attempts, 503)
    assert len(hooks.receiver.of_job(job.name)) == attempts
    assert not delivery.HasField("next_attempt_time")
    hooks.receiver.script[:] = [410]
    gone = await run_job(hooks, hooks.receiver.url)
    [delivery] = await settled(hooks, gone.name)
    assert (delivery.state, delivery.attempt, delivery.http_status) == (FAILED, 1, 410)


async def test_a_redelivery_is_a_new_delivery_of_the_same_event(hooks: Hooks) -> None:
    secret = (await rotate(hooks)).plaintext_secret
    job = await run_job(hooks, hooks.receiver.url)
    [original] = await settled(hooks, job.name)
    request = pb.RedeliverWebhookRequest(name=original.name, request_id="again-1")
    again = (await hooks.jobs.RedeliverWebhook(request, metadata=user())).delivery
    assert again.name != original.name
    assert again.redelivery_of == original.name
    assert again.event_id == original.event_id
    assert again.state == webhook_pb2.WEBHOOK_DELIVERY_STATE_PENDING
    replay = (await hooks.jobs.RedeliverWebhook(request, metadata=user())).delivery
    assert replay.name == again.name
    newest, oldest = await settled(hooks, job.name, count=2)
    assert (newest.name, newest.state, oldest.name) == (again.name, SUCCEEDED, original.name)
    first, second = hooks.receiver.of_job(job.name)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == original.event_id
    assert first.body == second.body
    verify(secret, second)

    reused = pb.RedeliverWebhookRequest(name=again.name, request_id="again-1")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await hooks.jobs.RedeliverWebhook(reused, metadata=user())
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert status.from_rpc_error(raised.value).reason == "IDEMPOTENCY_KEY_REUSED"

    hooks.receiver.gate.clear()  # the receiver holds the next request, so its delivery stays in progress
    busy = await hooks.jobs.RedeliverWebhook(pb.RedeliverWebhookRequest(name=original.name), metadata=user())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await hooks.jobs.RedeliverWebhook(
            pb.RedeliverWebhookRequest(name=busy.delivery.name), metadata=user()
        )
    hooks.receiver.gate.set()
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert status.from_rpc_error(raised.value).reason == "WEBHOOK_DELIVERY_IN_PROGRESS"

    page_one = await hooks.jobs.ListWebhookDeliveries(
        pb.ListWebhookDeliveriesRequest(parent=job.name, page_size=2), metadata=user()
    )
    page_two = await hooks.jobs.ListWebhookDeliveries(
        pb.ListWebhookDeliveriesRequest(parent=job.name, page_size=2, page_token=page_one.next_page_token),
        metadata=user(),
    )
    names = [d.name for d in (*page_one.deliveries, *page_two.deliveries)]
    assert names == [busy.delivery.name, again.name, original.name]
    assert not page_two.next_page_token


async def test_redeliveries_of_one_job_are_rate_limited(hooks: Hooks) -> None:
    await rotate(hooks)
    job = await run_job(hooks, hooks.receiver.url)
    [original] = await settled(hooks, job.name)
    for _ in range(REDELIVERIES_PER_HOUR):
        await hooks.jobs.RedeliverWebhook(pb.RedeliverWebhookRequest(name=original.name), metadata=user())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await hooks.jobs.RedeliverWebhook(pb.RedeliverWebhookRequest(name=original.name), metadata=user())
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    error = status.from_rpc_error(raised.value)
    assert error.reason == "REDELIVERY_RATE_EXCEEDED"
    assert error.retry_after is not None
    assert 3000 < error.retry_after <= 3600


async def test_during_a_rotation_both_secrets_sign_and_each_signature_verifies_with_its_own(
    hooks: Hooks,
) -> None:
    old = await rotate(hooks, request_id="first")
    assert (await rotate(hooks, request_id="first")).plaintext_secret == old.plaintext_secret
    new = await rotate(hooks, request_id="second")
    assert new.secret.version == 2
    assert new.plaintext_secret != old.plaintext_secret
    shown = (await hooks.jobs.GetWebhookSecret(pb.GetWebhookSecretRequest(), metadata=user())).secret
    assert shown.masked_secret == "whsec_…" + new.plaintext_secret[-4:]
    assert shown.version == 2
    grace_end = shown.previous_secret_expire_time.ToDatetime(tzinfo=UTC)
    assert timedelta(hours=23) < grace_end - datetime.now(UTC) <= timedelta(hours=24)

    job = await run_job(hooks, hooks.receiver.url)
    await settled(hooks, job.name)
    [received] = hooks.receiver.of_job(job.name)
    assert len(received.signatures) == 2
    for secret in (old.plaintext_secret, new.plaintext_secret):
        matching = []
        for signature in received.signatures:
            try:
                verify(secret, received, signature)
                matching.append(signature)
            except WebhookVerificationError:
                pass
        assert len(matching) == 1
    assert verify(new.plaintext_secret, received, received.signatures[0])  # the newest signs first

    revoked = await rotate(hooks, previous_secret_grace_period=Duration(seconds=0))
    assert not revoked.secret.HasField("previous_secret_expire_time")
    job = await run_job(hooks, hooks.receiver.url)
    await settled(hooks, job.name)
    [received] = hooks.receiver.of_job(job.name)
    assert len(received.signatures) == 1
    verify(revoked.plaintext_secret, received)
    with pytest.raises(WebhookVerificationError):
        verify(new.plaintext_secret, received)


async def test_rotation_requests_are_checked(hooks: Hooks) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await hooks.jobs.GetWebhookSecret(pb.GetWebhookSecretRequest(), metadata=user())
    assert status.from_rpc_error(raised.value).reason == "WEBHOOK_SECRET_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await rotate(hooks, previous_secret_grace_period=Duration(seconds=8 * 86400))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert status.from_rpc_error(raised.value).reason == "GRACE_PERIOD_INVALID"
    await rotate(hooks, request_id="r")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await rotate(hooks, request_id="r", previous_secret_grace_period=Duration(seconds=60))
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await hooks.jobs.RotateWebhookSecret(
            pb.RotateWebhookSecretRequest(), metadata=as_user("alice", "jobs:read jobs:write")
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_host_name_resolving_inside_the_platform_is_never_contacted(hooks: Hooks) -> None:
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
    if not any(a.startswith(("127.", "10.", "172.", "192.168.")) or a == "::1" for a in addresses):
        pytest.skip(f"this machine's host name {name} resolves to {addresses}, none of them internal")
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "0.0.0.0", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await rotate(hooks)
        job = await run_job(hooks, f"https://{name}:{port}/hook")
        [delivery] = await settled(hooks, job.name)
    finally:
        server.close()
    assert connections == 0
    assert (delivery.state, delivery.attempt, delivery.http_status) == (FAILED, 1, 0)
    assert delivery.error_message.startswith(f"refused: {name.lower()} resolves to")
    assert "not a public address" in delivery.error_message or "loopback" in delivery.error_message


async def test_progress_events_are_opt_in(hooks: Hooks) -> None:
    secret = (await rotate(hooks)).plaintext_secret
    hooks.harness.inference.hold = True
    webhook = job_pb2.WebhookConfig(url=hooks.receiver.url, events=["job.progress", "job.succeeded"])
    created = (await hooks.jobs.CreateJob(create_request(webhook=webhook), metadata=user())).job
    await hooks.harness.inference.wait_started()
    await settled(hooks, created.name)
    [progress] = hooks.receiver.of_job(created.name)
    event = verify(secret, progress)
    assert event["type"] == "job.progress"
    assert event["job"]["state"] == "JOB_STATE_RUNNING"  # type: ignore[index]
    assert event["job"]["progress"]["fraction"] == 0.5  # type: ignore[index]
    hooks.harness.inference.execution(f"{created.name}/attempts/1").release.set()
    await wait_for_state(hooks.harness, created.name, TERMINAL)
    first, last = await settled(hooks, created.name, count=2)
    assert (first.event_type, last.event_type) == ("job.succeeded", "job.progress")
    assert [r.event["type"] for r in hooks.receiver.of_job(created.name)] == ["job.progress", "job.succeeded"]
    assert len({r.headers["webhook-id"] for r in hooks.receiver.received}) == 2

    hooks.harness.inference.hold = False
    plain = await run_job(hooks, hooks.receiver.url)  # no filter: the terminal events only
    await settled(hooks, plain.name)
    assert [r.event["type"] for r in hooks.receiver.of_job(plain.name)] == ["job.succeeded"]


async def test_a_webhook_without_a_signing_secret_is_refused_at_creation(hooks: Hooks) -> None:
    webhook = job_pb2.WebhookConfig(url=hooks.receiver.url)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await hooks.jobs.CreateJob(create_request(webhook=webhook), metadata=user())
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert status.from_rpc_error(raised.value).reason == "WEBHOOK_SECRET_NOT_CONFIGURED"
    assert not (await hooks.jobs.ListJobs(pb.ListJobsRequest(), metadata=user())).jobs
    assert await hooks.harness.usage("alice") == (0, 0)


async def test_another_users_deliveries_are_not_found(hooks: Hooks) -> None:
    await rotate(hooks)
    job = await run_job(hooks, hooks.receiver.url)
    [delivery] = await settled(hooks, job.name)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await deliveries(hooks, job.name, owner="bob")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert status.from_rpc_error(raised.value).reason == "JOB_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await hooks.jobs.RedeliverWebhook(
            pb.RedeliverWebhookRequest(name=delivery.name), metadata=user("bob")
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert status.from_rpc_error(raised.value).reason == "WEBHOOK_DELIVERY_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await hooks.jobs.GetWebhookSecret(pb.GetWebhookSecretRequest(), metadata=user("bob"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    for bad in (f"{job.name}/webhookDeliveries/nope", "deliveries/x", job.name):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await hooks.jobs.RedeliverWebhook(pb.RedeliverWebhookRequest(name=bad), metadata=user())
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await hooks.jobs.ListWebhookDeliveries(
            pb.ListWebhookDeliveriesRequest(parent=job.name, page_token="garbage"), metadata=user()
        )
    assert status.from_rpc_error(raised.value).reason == "PAGE_TOKEN_INVALID"


async def test_without_sealing_keys_no_secret_can_be_created(harness: JobsHarness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await harness.jobs.RotateWebhookSecret(pb.RotateWebhookSecretRequest(), metadata=user())
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = status.from_rpc_error(raised.value)
    assert error.reason == "WEBHOOK_SECRET_KEYS_NOT_CONFIGURED"
    assert "WEBHOOK_SECRET_KEYS" in error.message


async def test_the_relay_hands_a_webhook_event_over_on_its_first_attempt(hooks: Hooks) -> None:
    await rotate(hooks)
    job = await run_job(hooks, hooks.receiver.url)
    await settled(hooks, job.name)
    query = select(outbox.c.attempts, outbox.c.last_error).where(outbox.c.topic == WEBHOOK)
    async with hooks.store.engine.connect() as connection:
        handed_over = (await connection.execute(query)).all()
    # A failure after the delivery was written would be retried unseen, the sender finding the delivery only
    # at its next poll: a second late, with a warning each time.
    assert [(row.attempts, row.last_error) for row in handed_over] == [(1, None)]


async def test_an_event_handed_over_again_after_a_crash_stays_one_delivery(hooks: Hooks) -> None:
    await rotate(hooks)
    job = await run_job(hooks, hooks.receiver.url)
    [delivery] = await settled(hooks, job.name)
    # A relay that died after creating the delivery but before marking its message done hands it over again.
    job_id = job.name.removeprefix("jobs/")
    again = OutboxItem(0, WEBHOOK, f"{job_id}:job.succeeded", {"job_id": job_id, "event": "job.succeeded"}, 2)
    webhooks = Webhooks(hooks.store, SqlJobStore(hooks.store.engine), render_event)
    await webhooks.record_event(again)
    await webhooks.record_event(again)
    assert [d.name for d in await deliveries(hooks, job.name)] == [delivery.name]
    assert len(hooks.receiver.of_job(job.name)) == 1
