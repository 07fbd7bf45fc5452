"""Signed webhooks, signed download links and preset previews through REST on the whole stack.

The developer's webhook receiver is a real HTTP server on loopback (allow-listed in jobs) that verifies every
signature with the `standardwebhooks` reference library.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from tests.e2e.jobs.conftest import Developer, events, job_id, quick_workflow
from tests.support.infra import free_port
from tests.support.jobs_stack import JobsStack


@dataclass
class Receiver:
    """Records each request and answers from a script (200 once it runs out)."""

    port: int
    script: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.text()))
        return web.Response(status=self.script.pop(0) if self.script else 200, text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(free_port())
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    yield found
    await runner.cleanup()


async def deliveries(dev: Developer, job: dict[str, Any]) -> list[dict[str, Any]]:
    reply = await dev.http.get(f"/api/v1/jobs/{job_id(job)}/webhook-deliveries")
    assert reply.status_code == 200, reply.text
    return list(reply.json()["deliveries"])


async def until_delivered(dev: Developer, job: dict[str, Any], count: int) -> list[dict[str, Any]]:
    while True:
        found = await deliveries(dev, job)
        if len(found) >= count and all(d["state"] == "WEBHOOK_DELIVERY_STATE_SUCCEEDED" for d in found):
            return found
        await asyncio.sleep(0.1)


async def test_webhooks_are_signed_retried_after_a_500_logged_and_redelivered(
    developer: Developer, receiver: Receiver
) -> None:
    assert (await developer.http.get("/api/v1/webhook-secret")).status_code == 404
    rotated = await developer.http.post("/api/v1/webhook-secret/rotate", headers={"Idempotency-Key": "first"})
    assert rotated.status_code == 200, rotated.text
    secret = rotated.json()["plaintext_secret"]
    masked = (await developer.http.get("/api/v1/webhook-secret")).json()
    assert masked["masked_secret"].endswith(secret[-4:])
    assert secret not in str(masked)
    receiver.script = [500]
    body = {"workflow": quick_workflow(), "webhook": {"url": receiver.url, "events": ["job.succeeded"]}}
    job = (await developer.http.post("/api/v1/jobs", json=body)).json()
    await events(developer.http, job_id(job))

    (delivery,) = await until_delivered(developer, job, 1)
    assert delivery["attempt"] == 2
    assert delivery["http_status"] == 200
    assert receiver.received[0][1] == receiver.received[1][1]  # the retry sends the same bytes
    verifier = Webhook(secret)
    for headers, text in receiver.received:
        event = verifier.verify(text, headers)
        assert event["type"] == "job.succeeded"
        assert event["job"]["name"] == job["name"]

    again = await developer.http.post(
        f"/api/v1/jobs/{job_id(job)}/webhook-deliveries/{delivery['name'].rpartition('/')[2]}/redeliver"
    )
    assert again.status_code == 202, again.text
    assert again.json()["redelivery_of"] == delivery["name"]
    await until_delivered(developer, job, 2)
    assert len(receiver.received) == 3
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(ids) == 1  # the same event each time, so a receiver can deduplicate
    verifier.verify(receiver.received[-1][1], receiver.received[-1][0])


async def test_a_webhook_to_a_private_address_is_refused_naming_the_field(developer: Developer) -> None:
    await developer.http.post("/api/v1/webhook-secret/rotate")
    body = {"workflow": quick_workflow(), "webhook": {"url": "https://10.0.0.5/hook"}}
    reply = await developer.http.post("/api/v1/jobs", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"]["details"]["field_violations"][0]["field"] == "webhook.url"


async def test_download_links_are_signed_expiring_and_confined(
    stack: JobsStack, developer: Developer
) -> None:
    job = (await developer.http.post("/api/v1/jobs", json={"workflow": quick_workflow()})).json()
    final = (await events(developer.http, job_id(job)))[-1]["data"]
    link = final["outputs"][0]["download_url"]
    query = parse_qs(urlsplit(link).query)
    path = urlsplit(link).path
    other_key = await stack.api_key(f"other-{uuid.uuid4().hex[:6]}@example.com")

    async with httpx.AsyncClient(base_url=stack.url) as anonymous:
        good = await anonymous.get(link)
        tampered = await anonymous.get(path, params={**query, "signature": "0" * 64})
        stretched = await anonymous.get(path, params={**query, "expires": str(int(query["expires"][0]) + 60)})
        expired = await anonymous.get(
            path, params={"expires": "1000", "signature": stack_signature(stack, path, 1000)}
        )
        foreign = await anonymous.get(link, headers={"Authorization": f"Bearer {other_key}"})
        own = await anonymous.get(link, headers={"Authorization": f"Bearer {developer.key}"})

    assert good.status_code == 200
    assert good.headers["content-type"] == "image/png"
    assert (tampered.status_code, stretched.status_code) == (403, 403)
    assert tampered.json()["error"]["details"]["reason"] == "SIGNATURE_INVALID"
    assert expired.status_code == 403
    assert expired.json()["error"]["details"]["reason"] == "LINK_EXPIRED"
    assert foreign.status_code == 404
    assert own.status_code == 200


def stack_signature(stack: JobsStack, path: str, expires: int) -> str:
    """A valid signature with a past expiry, made with the gateway's own signer (as an old link would be)."""
    from urllib.parse import unquote

    key = unquote(path.removeprefix("/api/v1/files/"))
    return str(stack.gateway.app.state.files.signer.sign(key, expires))


async def test_preset_previews_are_served_with_an_entity_tag(developer: Developer) -> None:
    preset = (await developer.http.get("/api/v1/presets/cinematic")).json()
    assert preset["preview_image_uri"] == "/api/v1/presets/cinematic/preview?version=1"

    image = await developer.http.get(preset["preview_image_uri"])
    cached = await developer.http.get(
        preset["preview_image_uri"], headers={"If-None-Match": image.headers["etag"]}
    )
    missing = await developer.http.get("/api/v1/presets/txt2img/preview")

    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert image.content[:3] == b"\xff\xd8\xff"
    assert cached.status_code == 304
    assert missing.status_code == 404
    assert missing.json()["error"]["details"]["reason"] == "PREVIEW_NOT_FOUND"
