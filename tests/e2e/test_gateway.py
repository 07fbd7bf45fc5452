"""The gateway in front of all five services, each on its own real port with real PostgreSQL and Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from identity.bootstrap import components
from servicekit import logging
from tests.support.gateway import running_gateway
from tests.support.infra import free_port
from tests.support.servers import SERVICES, running_service, service_settings


async def issue_key(database_url: str, redis_url: str, scopes: list[str]) -> dict[str, str]:
    """Authorization headers with a new API key of a new user, issued by identity's own use cases."""
    parts = components(service_settings("identity", database_url, redis_url))
    try:
        user, _ = await parts.services.users.ensure("edge@example.com", "Edge")
        issued = await parts.services.api_keys.issue(user.id, "edge", scopes, None)
    finally:
        await parts.close()
    return {"Authorization": f"Bearer {issued.key}"}


@pytest.fixture
async def stack(database_url: str, clean_redis: str) -> AsyncIterator[dict[str, object]]:
    async with AsyncExitStack() as stack:
        servers = {
            name: await stack.enter_async_context(running_service(name, database_url, clean_redis))
            for name in SERVICES
        }
        addresses = {name: f"127.0.0.1:{server.port}" for name, server in servers.items()}
        url = await stack.enter_async_context(running_gateway(addresses))
        key = await issue_key(database_url, clean_redis, ["presets:read"])
        yield {"url": url, "servers": servers, "key": key}


async def test_ready_when_every_service_is_serving_and_not_when_one_stops(stack: dict[str, object]) -> None:
    async with httpx.AsyncClient(base_url=str(stack["url"])) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["services"] == {name: "SERVING" for name in SERVICES}
        assert (await client.get("/health")).json() == {"status": "ok"}

        await stack["servers"]["billing"].stop(0.1)  # type: ignore[index]
        degraded = await client.get("/ready")
    assert degraded.status_code == 503
    assert degraded.json()["services"]["billing"].startswith("UNREACHABLE")
    assert degraded.json()["services"]["jobs"] == "SERVING"


async def test_a_not_found_from_jobs_is_a_404_in_the_error_shape_with_the_same_request_id(
    stack: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    logging.configure("test")
    headers = {**stack["key"], "X-Request-ID": "req-edge-1"}  # type: ignore[dict-item]
    async with httpx.AsyncClient(base_url=str(stack["url"])) as client:
        reply = await client.get("/api/v1/presets/no_such_preset", headers=headers)
    assert reply.status_code == 404
    assert reply.headers["x-request-id"] == "req-edge-1"
    error = reply.json()["error"]
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    assert error["message"] == "preset 'no_such_preset' does not exist"
    assert error["details"]["reason"] == "PRESET_NOT_FOUND"
    assert error["details"]["request_id"] == "req-edge-1"
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    jobs_call = [r for r in records if r.get("method") == "/comfyapi.jobs.v1.JobService/GetPreset"]
    assert jobs_call, "the jobs service logged no GetPreset call"
    assert jobs_call[0]["request_id"] == "req-edge-1"
    assert jobs_call[0]["code"] == "NOT_FOUND"


async def test_presets_need_a_credential_with_the_presets_read_scope(
    stack: dict[str, object], database_url: str, clean_redis: str
) -> None:
    other = await issue_key(database_url, clean_redis, ["jobs:read"])
    async with httpx.AsyncClient(base_url=str(stack["url"])) as client:
        anonymous = await client.get("/api/v1/presets")
        unscoped = await client.get("/api/v1/presets", headers=other)
        allowed = await client.get("/api/v1/presets", headers=stack["key"])  # type: ignore[arg-type]
    assert anonymous.status_code == 401
    assert unscoped.status_code == 403
    assert unscoped.json()["error"]["details"]["metadata"]["scope"] == "presets:read"
    assert allowed.status_code == 200
    assert "cinematic" in {p["name"].removeprefix("presets/") for p in allowed.json()["presets"]}


async def test_bad_query_parameters_are_a_400_naming_the_field(stack: dict[str, object]) -> None:
    async with httpx.AsyncClient(base_url=str(stack["url"]), headers=stack["key"]) as client:  # type: ignore[arg-type]
        reply = await client.get("/api/v1/presets", params={"page_size": "lots"})
        listed = await client.get("/api/v1/presets")
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"]["field_violations"][0]["field"] == "query.page_size"
    assert listed.status_code == 200


async def test_unknown_routes_answer_in_the_error_shape(stack: dict[str, object]) -> None:
    async with httpx.AsyncClient(base_url=str(stack["url"])) as client:
        reply = await client.get("/api/v1/nothing-here")
    assert reply.status_code == 404
    assert reply.json()["error"]["status"] == "NOT_FOUND"


async def test_metrics_docs_and_openapi_are_served(stack: dict[str, object]) -> None:
    async with httpx.AsyncClient(base_url=str(stack["url"]), headers=stack["key"]) as client:  # type: ignore[arg-type]
        await client.get("/api/v1/presets")
        metrics = (await client.get("/metrics")).text
        docs = await client.get("/docs")
        spec = (await client.get("/openapi.json")).json()
    assert 'comfyapi_http_server_handled_total{code="200",method="GET /api/v1/presets"} 1.0' in metrics
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/presets/{preset_id}" in spec["paths"]


async def test_a_service_that_is_down_is_a_503_with_retry_after() -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with (
        running_gateway({name: dead for name in SERVICES}) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        # The key cannot even be checked: identity is down too, and that is a 503, not a 401.
        reply = await client.get("/api/v1/presets", headers={"Authorization": "Bearer cmfy_AbCdEfGh_x"})
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "1"
    assert reply.json()["error"]["status"] == "UNAVAILABLE"
