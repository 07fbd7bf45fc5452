"""Every kind of bad input through REST gets a precise 4xx in the one error shape naming the field or node."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.e2e.jobs.conftest import Developer, photo, quick_workflow, upload
from tests.support.edge_gateway import running_edge
from tests.support.infra import free_port
from tests.support.jobs_stack import JobsStack


def error_of(reply: httpx.Response, code: int) -> dict[str, Any]:
    assert reply.status_code == code, reply.text
    error = dict(reply.json()["error"])
    assert error["code"] == code
    return error


def fields(error: dict[str, Any]) -> list[str]:
    return [v["field"] for v in error["details"].get("field_violations", [])]


async def preset_job(dev: Developer, **preset: Any) -> httpx.Response:
    uploaded = await upload(dev.http, photo())
    body = {"preset": preset, "inputs": [{"name": "image", "upload_key": uploaded["upload_key"]}]}
    return await dev.http.post("/api/v1/jobs", json=body)


async def test_an_unknown_preset_is_a_404(developer: Developer) -> None:
    error = error_of(await preset_job(developer, name="no_such_preset"), 404)
    assert error["details"]["reason"] == "PRESET_NOT_FOUND"


async def test_a_parameter_out_of_range_is_a_400_naming_it(developer: Developer) -> None:
    error = error_of(await preset_job(developer, name="cinematic", parameters={"contrast": 9.5}), 400)
    assert error["details"]["reason"] == "PARAMETER_INVALID"
    assert fields(error) == ['preset.parameters["contrast"]']


async def test_a_64_bit_parameter_survives_exactly(developer: Developer) -> None:
    seed = 2**63 - 11  # far beyond what a double holds exactly
    reply = await preset_job(developer, name="cinematic", parameters={"grain_seed": seed})
    assert reply.status_code == 201, reply.text
    assert reply.json()["source"]["preset"]["parameters"]["grain_seed"]["int_value"] == str(seed)
    error = error_of(await preset_job(developer, name="cinematic", parameters={"grain_seed": 2**64}), 400)
    assert fields(error) == ['preset.parameters["grain_seed"]']


async def test_malformed_json_is_a_400(developer: Developer) -> None:
    reply = await developer.http.post(
        "/api/v1/jobs", content=b'{"workflow": {', headers={"content-type": "application/json"}
    )
    error = error_of(reply, 400)
    assert error["details"]["reason"] == "MALFORMED_JSON"
    nan = await developer.http.post("/api/v1/jobs", content=b'{"workflow": {"1": NaN}}')
    assert error_of(nan, 400)["details"]["reason"] == "MALFORMED_JSON"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"workflow": quick_workflow(), "priority": 5}, "priority"),
        ({"workflow": quick_workflow(), "labels": {"env": 3}}, 'labels["env"]'),
        ({"workflow": quick_workflow(), "inputs": [{"name": "a"}]}, "inputs[0]"),
        ({"workflow": quick_workflow(), "inputs": [{"name": 7, "upload_key": "k"}]}, "inputs[0].name"),
        ({"workflow": "not an object"}, "workflow"),
        ({"preset": {"name": "cinematic", "version": "one"}}, "preset.version"),
        ({"workflow": quick_workflow(), "deadline": "tomorrow"}, "deadline"),
        ({"workflow": quick_workflow(), "surprise": True}, "surprise"),
        ({}, "body"),
    ],
)
async def test_wrong_types_are_a_400_naming_the_field(developer: Developer, body: Any, field: str) -> None:
    error = error_of(await developer.http.post("/api/v1/jobs", json=body), 400)
    assert field in fields(error)


async def test_workflow_errors_name_the_node(developer: Developer) -> None:
    cyclic = {
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    unknown = {**quick_workflow(), "5": {"class_type": "NoSuchNode", "inputs": {}}}
    malformed = {"1": {"inputs": {}}}
    bad_value = quick_workflow()
    bad_value["1"]["inputs"]["width"] = -5

    for graph, node in ((cyclic, None), (unknown, '"5"'), (malformed, '"1"'), (bad_value, '"1"')):
        error = error_of(await developer.http.post("/api/v1/jobs", json={"workflow": graph}), 400)
        assert error["details"]["reason"] == "WORKFLOW_INVALID", error
        assert all(f.startswith("workflow") for f in fields(error)), fields(error)
        if node:
            assert any(node in f for f in fields(error)), fields(error)


async def test_an_oversized_body_is_a_413_before_parsing(stack: JobsStack, developer: Developer) -> None:
    limit = stack.gateway.app.state.settings.max_body_bytes
    declared = await developer.http.post("/api/v1/jobs", content=b"x" * (limit + 1))

    async def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    streamed = await developer.http.post("/api/v1/jobs", content=chunks())

    for reply in (declared, streamed):
        error = error_of(reply, 413)
        assert error["details"]["reason"] == "BODY_TOO_LARGE"
        assert error["details"]["metadata"]["limit_bytes"] == str(limit)


async def test_uploads_that_are_not_images_or_lie_about_their_type_are_415(developer: Developer) -> None:
    text = await developer.http.post("/api/v1/uploads", files={"file": ("notes.png", b"hello", "image/png")})
    lying = await developer.http.post(
        "/api/v1/uploads", files={"file": ("a.png", photo(fmt="JPEG"), "image/png")}
    )
    missing = await developer.http.post("/api/v1/uploads", files={"other": ("a.png", photo(), "image/png")})

    for reply in (text, lying):
        error = error_of(reply, 415)
        assert error["details"]["reason"] == "UNSUPPORTED_MEDIA_TYPE"
        assert fields(error) == ["file"]
    assert fields(error_of(missing, 400)) == ["file"]


async def test_a_malformed_multipart_body_is_a_400_naming_the_field(developer: Developer) -> None:
    two_files = await developer.http.post(
        "/api/v1/uploads",
        files=[("file", ("a.png", photo(), "image/png")), ("file", ("b.png", photo(), "image/png"))],
    )
    error = error_of(two_files, 400)
    assert error["details"]["reason"] == "MULTIPART_INVALID"
    assert fields(error) == ["file"]
    assert "Too many files" in error["message"]


async def test_an_upload_over_the_size_limit_is_a_413_naming_it(
    stack: JobsStack, developer: Developer
) -> None:
    settings = replace(stack.gateway.app.state.settings, upload_max_bytes=10_000)
    noise = np.random.default_rng(1).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")  # about 30 kB: over the file limit, within the body limit
    async with (
        running_edge(settings) as small,
        httpx.AsyncClient(base_url=small.url, headers={"Authorization": f"Bearer {developer.key}"}) as http,
    ):
        reply = await http.post(
            "/api/v1/uploads", files={"file": ("big.png", buffer.getvalue(), "image/png")}
        )
        huge = await http.post("/api/v1/uploads", files={"file": ("huge.png", b"x" * 200_000, "image/png")})
    error = error_of(reply, 413)
    assert error["details"]["reason"] == "UPLOAD_TOO_LARGE"
    assert error["details"]["metadata"]["limit_bytes"] == "10000"
    assert "10000 bytes" in error["message"]
    assert error_of(huge, 413)["details"]["reason"] == "BODY_TOO_LARGE"


async def test_an_upload_is_stored_with_a_safe_name_and_its_facts(
    stack: JobsStack, developer: Developer
) -> None:
    data = photo(50, 40, "WEBP")
    reply = await developer.http.post(
        "/api/v1/uploads", files={"file": ("../../etc/pass wd.webp", data, "image/webp")}
    )
    stored = reply.json()
    assert reply.status_code == 201
    assert stored["filename"] == "pass_wd.webp"
    assert stored["upload_key"].endswith(f"/{stored['upload_id']}/pass_wd.webp")
    assert (stored["width"], stored["height"], stored["size_bytes"]) == (50, 40, len(data))
    assert (stack.storage / stored["upload_key"]).read_bytes() == data


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.1.2.3/photo.png", "INPUT_URL_FORBIDDEN"),
        ("http://169.254.169.254/latest/meta-data", "INPUT_URL_FORBIDDEN"),
        ("http://localhost:8080/photo.png", "INPUT_URL_FORBIDDEN"),
        ("http://[::ffff:192.168.0.1]/photo.png", "INPUT_URL_FORBIDDEN"),
        ("ftp://example.com/photo.png", "INPUT_URL_FORBIDDEN"),
        ("http://127.0.0.1:{closed}/photo.png", "INPUT_URL_UNREACHABLE"),
        ("http://does-not-exist.invalid/photo.png", "INPUT_URL_UNREACHABLE"),
    ],
)
async def test_private_or_unreachable_input_urls_are_a_400_naming_the_input(
    developer: Developer, url: str, reason: str
) -> None:
    body = {
        "preset": {"name": "cinematic"},
        "inputs": [{"name": "image", "url": url.format(closed=free_port())}],
    }
    error = error_of(await developer.http.post("/api/v1/jobs", json=body), 400)
    assert error["details"]["reason"] == reason
    assert fields(error) == ["inputs[0].url"]


async def test_an_unknown_upload_id_is_a_404_naming_the_input(developer: Developer) -> None:
    body = {"preset": {"name": "cinematic"}, "inputs": [{"name": "image", "upload_id": "0" * 32}]}
    error = error_of(await developer.http.post("/api/v1/jobs", json=body), 404)
    assert fields(error) == ["inputs[0].upload_id"]


async def test_scopes_and_ownership_are_enforced(stack: JobsStack, developer: Developer) -> None:
    job = (await developer.http.post("/api/v1/jobs", json={"workflow": quick_workflow()})).json()
    reader = await stack.api_key("reader@example.com", ["jobs:read"])
    async with stack.client(reader) as http:
        refused = await http.post("/api/v1/jobs", json={"workflow": quick_workflow()})
        foreign = await http.get(f"/api/v1/jobs/{job['name'].removeprefix('jobs/')}")
        no_upload = await http.post("/api/v1/uploads", files={"file": ("a.png", photo(), "image/png")})
    async with stack.client() as anonymous:
        nobody = await anonymous.get("/api/v1/jobs")
    assert error_of(refused, 403)["details"]["metadata"]["scope"] == "jobs:write"
    assert error_of(foreign, 404)["details"]["reason"] == "JOB_NOT_FOUND"
    assert error_of(no_upload, 403)["details"]["metadata"]["scope"] == "uploads:write"
    assert error_of(nobody, 401)["status"] == "UNAUTHENTICATED"


async def test_a_malformed_idempotency_key_is_a_400_naming_the_header(developer: Developer) -> None:
    reply = await developer.http.post(
        "/api/v1/jobs", json={"workflow": quick_workflow()}, headers={"Idempotency-Key": "no spaces allowed"}
    )
    assert fields(error_of(reply, 400)) == ["Idempotency-Key"]
