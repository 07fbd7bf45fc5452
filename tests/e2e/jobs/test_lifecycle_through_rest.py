"""Jobs through REST on the whole stack: cancel queued and running, idempotent replay, deadlines, resumable
events, generate with wait, URL inputs fetched by the gateway, and fairness between owners."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiohttp import web

from tests.e2e.jobs.conftest import (
    Developer,
    events,
    job_id,
    photo,
    pixels,
    quick_workflow,
    slow_workflow,
    upload,
)
from tests.support.edge_gateway import running_edge
from tests.support.infra import free_port
from tests.support.jobs_stack import JobsStack


async def submit(dev: Developer, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    reply = await dev.http.post("/api/v1/jobs", json=body, headers=headers)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


async def get(dev: Developer, job: dict[str, Any]) -> dict[str, Any]:
    reply = await dev.http.get(f"/api/v1/jobs/{job_id(job)}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def until(dev: Developer, job: dict[str, Any], *states: str) -> dict[str, Any]:
    """The job once it is in one of `states` (polled; the test's own timeout bounds the wait)."""
    while True:
        current = await get(dev, job)
        if current["state"].removeprefix("JOB_STATE_").lower() in states:
            return current
        await asyncio.sleep(0.05)


async def test_a_queued_job_cancelled_never_runs_and_a_running_one_is_interrupted(
    developer: Developer,
) -> None:
    running = await submit(developer, {"workflow": slow_workflow()})
    queued = await submit(developer, {"workflow": quick_workflow()})  # one running job per owner
    await until(developer, running, "running")

    cancelled = await developer.http.post(f"/api/v1/jobs/{job_id(queued)}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "JOB_STATE_CANCELLED"
    interrupted = await developer.http.post(f"/api/v1/jobs/{job_id(running)}/cancel")
    assert interrupted.status_code == 200
    stream = await events(developer.http, job_id(running))

    assert stream[-1]["event"] == "cancelled"
    final = await get(developer, running)
    assert final["state"] == "JOB_STATE_CANCELLED"
    assert "outputs" not in final
    never_ran = await get(developer, queued)
    assert never_ran["state"] == "JOB_STATE_CANCELLED"
    assert "start_time" not in never_ran
    assert never_ran.get("attempt_count", 0) == 0
    again = await developer.http.post(f"/api/v1/jobs/{job_id(queued)}/cancel")
    assert again.json()["state"] == "JOB_STATE_CANCELLED"


async def test_cancelling_a_finished_job_is_a_400_naming_the_reason(developer: Developer) -> None:
    job = await submit(developer, {"workflow": quick_workflow()})
    await events(developer.http, job_id(job))
    reply = await developer.http.post(f"/api/v1/jobs/{job_id(job)}/cancel")
    assert reply.status_code == 400
    assert reply.json()["error"]["details"]["reason"] == "JOB_ALREADY_FINISHED"


async def test_an_idempotency_key_replays_the_original_job_and_refuses_another_body(
    developer: Developer,
) -> None:
    key = f"order-{uuid.uuid4().hex}"
    body = {"workflow": quick_workflow(), "labels": {"order": "42"}}
    first = await developer.http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    second = await developer.http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    other = await developer.http.post(
        "/api/v1/jobs", json={**body, "labels": {"order": "43"}}, headers={"Idempotency-Key": key}
    )

    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["name"] == first.json()["name"]
    assert second.json()["request_id"] == key
    assert other.status_code == 409
    assert other.json()["error"]["details"]["reason"] == "IDEMPOTENCY_KEY_REUSED"
    listed = await developer.http.get("/api/v1/jobs", params={"label_selector": "order"})
    assert [j["name"] for j in listed.json()["jobs"]] == [first.json()["name"]]


async def test_a_job_past_its_deadline_expires(developer: Developer) -> None:
    blocker = await submit(developer, {"workflow": slow_workflow()})
    deadline = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    late = await submit(developer, {"workflow": quick_workflow(), "deadline": deadline})

    stream = await events(developer.http, job_id(late))

    assert stream[-1]["event"] == "expired"
    assert stream[-1]["data"]["state"] == "JOB_STATE_EXPIRED"
    assert "start_time" not in stream[-1]["data"]
    await developer.http.post(f"/api/v1/jobs/{job_id(blocker)}/cancel")


async def test_events_resume_after_last_event_id_without_losing_one(developer: Developer) -> None:
    job = await submit(developer, {"workflow": slow_workflow(blurs=3)})
    full = await events(developer.http, job_id(job))
    assert len(full) >= 3

    resumed = await events(developer.http, job_id(job), last_event_id=full[1]["id"])

    assert [e["id"] for e in resumed] == [e["id"] for e in full[2:]][-len(resumed) :]
    assert resumed[-1]["event"] == "succeeded"
    assert int(resumed[0]["id"]) > int(full[1]["id"])
    after_end = await events(developer.http, job_id(job), last_event_id=full[-1]["id"])
    assert after_end == []


async def test_a_stream_sends_heartbeats_while_nothing_changes(stack: JobsStack) -> None:
    key = await stack.api_key(f"beat-{uuid.uuid4().hex[:6]}@example.com")
    settings = stack.gateway.app.state.settings
    assert settings.sse_heartbeat_seconds == 15.0
    # A second gateway with a short heartbeat, on the same services.
    async with (
        running_edge(replace(settings, sse_heartbeat_seconds=0.2)) as quick,
        httpx.AsyncClient(base_url=quick.url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        # The owner's one running slot is taken, so the watched job waits in silence for a few seconds.
        await http.post("/api/v1/jobs", json={"workflow": slow_workflow(blurs=6)})
        job = (await http.post("/api/v1/jobs", json={"workflow": quick_workflow()})).json()
        async with http.stream("GET", f"/api/v1/jobs/{job_id(job)}/events") as response:
            lines = [line async for line in response.aiter_lines()]
    assert ": keep-alive" in lines
    assert "event: succeeded" in lines, [line for line in lines if not line.startswith("data:")]


async def test_generate_with_wait_answers_with_the_finished_job_and_its_outputs(developer: Developer) -> None:
    uploaded = await upload(developer.http, photo())
    body = {
        "preset": {"name": "portrait_pro"},
        "inputs": [{"name": "image", "upload_id": uploaded["upload_id"]}],
    }

    waited = await developer.http.post("/api/v1/generate", params={"wait": "true"}, json=body)
    queued = await developer.http.post("/api/v1/generate", json={"workflow": quick_workflow()})

    assert waited.status_code == 200, waited.text
    assert waited.json()["state"] == "JOB_STATE_SUCCEEDED"
    (output,) = waited.json()["outputs"]
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(output["download_url"])).status_code == 200
    assert queued.status_code == 202
    assert queued.json()["state"] in ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING")
    assert queued.headers["location"] == f"/api/v1/{queued.json()['name']}"


async def test_generate_that_outlasts_the_wait_is_a_202_to_poll(
    stack: JobsStack, developer: Developer
) -> None:
    settings = replace(stack.gateway.app.state.settings, generate_wait_seconds=0.3)
    async with (
        running_edge(settings) as short,
        httpx.AsyncClient(base_url=short.url, headers={"Authorization": f"Bearer {developer.key}"}) as http,
    ):
        reply = await http.post(
            "/api/v1/generate", params={"wait": "true"}, json={"workflow": slow_workflow(blurs=3)}
        )
    assert reply.status_code == 202
    assert reply.json()["state"] in ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING")


async def test_an_input_by_url_is_fetched_stored_and_edited(stack: JobsStack, developer: Developer) -> None:
    original = photo(80, 60, "JPEG")

    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=original, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/photos/beach.jpg", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        body = {
            "preset": {"name": "product_glow"},
            "inputs": [{"name": "image", "url": f"http://127.0.0.1:{port}/photos/beach.jpg"}],
        }
        job = await submit(developer, body)
        stream = await events(developer.http, job_id(job))
    finally:
        await runner.cleanup()

    (stored,) = job["inputs"]
    assert stored["upload_key"].endswith("/beach.jpg")
    assert (stack.storage / stored["upload_key"]).read_bytes() == original
    final = stream[-1]["data"]
    assert final["state"] == "JOB_STATE_SUCCEEDED"
    async with httpx.AsyncClient() as anonymous:
        edited = pixels((await anonymous.get(final["outputs"][0]["download_url"])).content)
    assert edited.mean() > pixels(original).mean()


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


async def test_one_owners_backlog_does_not_starve_another(stack: JobsStack) -> None:
    a_key = await stack.api_key(f"busy-{uuid.uuid4().hex[:6]}@example.com")
    b_key = await stack.api_key(f"late-{uuid.uuid4().hex[:6]}@example.com")
    async with stack.client(a_key) as a, stack.client(b_key) as b:
        replies = await asyncio.gather(
            *(a.post("/api/v1/jobs", json={"workflow": slow_workflow(blurs=2, size=1024)}) for _ in range(20))
        )
        assert {r.status_code for r in replies} == {201}
        b_job = (await b.post("/api/v1/jobs", json={"workflow": quick_workflow()})).json()
        b_events = await events(b, job_id(b_job))
        listed = (await a.get("/api/v1/jobs", params={"page_size": 100})).json()["jobs"]
        for reply in replies:
            await a.post(f"/api/v1/jobs/{job_id(reply.json())}/cancel")
    assert b_events[-1]["event"] == "succeeded"
    b_created, b_started = when(b_job["create_time"]), when(b_events[-1]["data"]["start_time"])
    a_started_meanwhile = [
        j for j in listed if "start_time" in j and b_created <= when(j["start_time"]) < b_started
    ]
    still_waiting = [j for j in listed if j["state"] == "JOB_STATE_QUEUED"]
    assert len(still_waiting) >= 10, (
        "owner A's backlog had drained before B's job ran; the test proves nothing"
    )
    # One running job per owner on two dispatch slots: B waits for at most the one A job that frees a slot.
    assert len(a_started_meanwhile) <= 1


async def test_jobs_are_listed_newest_first_filtered_and_paged(developer: Developer) -> None:
    first = await submit(developer, {"workflow": quick_workflow(), "labels": {"batch": "a"}})
    second = await submit(developer, {"workflow": quick_workflow(), "labels": {"batch": "b"}})
    await events(developer.http, job_id(first))
    await events(developer.http, job_id(second))
    before = datetime.fromisoformat(first["create_time"])

    page = await developer.http.get("/api/v1/jobs", params={"page_size": 1, "state": "succeeded"})
    rest = await developer.http.get(
        "/api/v1/jobs",
        params={"page_size": 1, "state": "succeeded", "page_token": page.json()["next_page_token"]},
    )
    labelled = await developer.http.get("/api/v1/jobs", params={"label_selector": "batch=a"})
    later = await developer.http.get(
        "/api/v1/jobs", params={"created_after": (before + timedelta(microseconds=1)).isoformat()}
    )
    wrong_state = await developer.http.get("/api/v1/jobs", params={"state": "sleeping"})

    assert [j["name"] for j in page.json()["jobs"]] == [second["name"]]
    assert [j["name"] for j in rest.json()["jobs"]] == [first["name"]]
    assert [j["name"] for j in labelled.json()["jobs"]] == [first["name"]]
    assert [j["name"] for j in later.json()["jobs"]] == [second["name"]]
    assert wrong_state.status_code == 400
    assert wrong_state.json()["error"]["details"]["field_violations"][0]["field"] == "state"
