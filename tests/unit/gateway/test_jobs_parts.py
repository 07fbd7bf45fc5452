"""The job routes' small parts on their own: body parsing, image sniffing, link signing, SSRF checks of
input URLs against a real loopback server, and the SSE framing."""

from __future__ import annotations

import io
import ipaddress
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from PIL import Image

from comfyapi.jobs.v1 import job_pb2
from gateway.api.events import event_name, frame
from gateway.errors import EdgeError
from gateway.fetch import UrlFetcher
from gateway.images import safe_filename, sniff
from gateway.job_body import JobBody, create_request, field_name, load_json, validated
from servicekit import errors
from servicekit.netguard import Address, forbidden_address, forbidden_target
from servicekit.storage import LinkSigner
from tests.support.infra import free_port


def png(width: int = 4, height: int = 3, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, fmt)
    return buffer.getvalue()


def test_workflow_integers_beyond_doubles_are_forwarded_digit_for_digit() -> None:
    seed = 2**64 - 1  # ComfyUI accepts seeds up to 2^64-1; a double would round it
    raw = json.dumps({"workflow": {"3": {"class_type": "KSampler", "inputs": {"seed": seed, "cfg": 7.5}}}})
    message = create_request(validated(JobBody, load_json(raw.encode())), "key-1")
    assert f'"seed":{seed}' in message.workflow_json
    assert json.loads(message.workflow_json)["3"]["inputs"]["seed"] == seed
    assert message.request_id == "key-1"


def test_preset_parameters_keep_their_types() -> None:
    body = {"preset": {"name": "cinematic", "parameters": {"a": True, "b": 2**62, "c": 0.5, "d": "x"}}}
    message = create_request(validated(JobBody, body), "")
    values = message.preset.parameters
    assert message.preset.preset == "presets/cinematic"
    assert [values[k].WhichOneof("kind") for k in "abcd"] == [
        "bool_value",
        "int_value",
        "float_value",
        "string_value",
    ]
    assert values["b"].int_value == 2**62


def test_bad_bodies_name_the_field_as_the_client_wrote_it() -> None:
    assert field_name(("inputs", 0, "url")) == "inputs[0].url"
    assert field_name(("labels", "env")) == 'labels["env"]'
    assert field_name(("preset", "parameters", "x")) == 'preset.parameters["x"]'
    with pytest.raises(errors.InvalidArgument) as raised:
        validated(JobBody, {"workflow": {}, "preset": {"name": "x"}})
    assert raised.value.violations[0].field == "body"
    with pytest.raises(errors.InvalidArgument) as raised:
        load_json(b'{"a": Infinity}')
    assert raised.value.reason == "MALFORMED_JSON"


def test_images_are_sniffed_from_their_bytes() -> None:
    facts = sniff(png(5, 7), "file", 100)
    assert (facts.content_type, facts.width, facts.height) == ("image/png", 5, 7)
    assert sniff(png(fmt="JPEG"), "file", 100, "image/jpeg").extension == ".jpg"
    assert sniff(png(), "file", 100, "application/octet-stream").content_type == "image/png"
    for data, declared in (
        (b"GIF89a....", ""),
        (b"%PDF-1.4", ""),
        (png(), "image/jpeg"),
        (png(), "text/plain"),
    ):
        with pytest.raises(EdgeError) as raised:
            sniff(data, "inputs[2].url", 100, declared)
        assert raised.value.http_status == 415
        assert raised.value.violations[0].field == "inputs[2].url"
    with pytest.raises(EdgeError) as raised:
        sniff(png(20, 20), "file", 100)
    assert raised.value.http_status == 413


def test_file_names_are_sanitised() -> None:
    assert safe_filename("../../etc/passwd", ".png") == "passwd.png"
    assert safe_filename("C:\\Users\\me\\My Photo (1).JPG", ".jpg") == "My_Photo_1.jpg"
    assert safe_filename(".hidden", ".png") == "hidden.png"
    assert safe_filename("", ".webp") == "image.webp"
    assert safe_filename("a" * 500 + ".png", ".png") == "a" * 80 + ".png"


def test_links_are_bound_to_key_and_expiry_and_expire() -> None:
    signer = LinkSigner(b"k" * 32)
    signature = signer.sign("outputs/u/j/1.png", 2000)
    assert signer.verify("outputs/u/j/1.png", 2000, signature, now=1999)
    assert not signer.verify("outputs/u/j/1.png", 2000, signature, now=2001)
    assert not signer.verify("outputs/u/j/2.png", 2000, signature, now=1999)
    assert not signer.verify("outputs/u/j/1.png", 2001, signature, now=1999)
    assert not LinkSigner(b"o" * 32).verify("outputs/u/j/1.png", 2000, signature, now=1999)
    with pytest.raises(ValueError, match="16 bytes"):
        LinkSigner(b"short")


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "::ffff:10.0.0.1", "fc00::1", "0.0.0.0"]
)
def test_internal_addresses_are_forbidden(address: str) -> None:
    assert forbidden_address(ipaddress.ip_address(address))


def test_input_urls_may_be_plain_http_but_not_internal_names() -> None:
    assert forbidden_target("http://example.com/a.png", frozenset(), require_https=False) == ""
    assert forbidden_target("http://example.com/a.png", frozenset()) != ""
    assert "internal" in forbidden_target("http://db.internal/a.png", frozenset(), require_https=False)
    assert forbidden_target("http://localhost/a.png", frozenset({"localhost"}), require_https=False) == ""


@pytest.fixture
async def image_server() -> AsyncIterator[int]:
    async def photo(_: web.Request) -> web.Response:
        return web.Response(body=png(), content_type="image/png")

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://10.0.0.1/photo.png")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x" * 1024)
        return response

    app = web.Application()
    app.router.add_get("/photo.png", photo)
    app.router.add_get("/moved.png", redirect)
    app.router.add_get("/endless.png", endless)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


def resolver_to(address: str) -> object:
    async def resolve(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address(address)]

    return resolve


async def test_the_fetcher_connects_to_the_checked_address_and_refuses_internal_ones(
    image_server: int,
) -> None:
    allowed = UrlFetcher(frozenset({"photos.test"}), 10_000, 5, resolver_to("127.0.0.1"))  # type: ignore[arg-type]
    rebinding = UrlFetcher(frozenset(), 10_000, 5, resolver_to("127.0.0.1"))  # type: ignore[arg-type]
    try:
        fetched = await allowed.fetch(f"http://photos.test:{image_server}/photo.png", "inputs[0].url")
        assert fetched.data == png()
        assert fetched.filename == "photo.png"
        with pytest.raises(errors.InvalidArgument) as raised:
            await rebinding.fetch(f"http://photos.test:{image_server}/photo.png", "inputs[0].url")
        assert raised.value.reason == "INPUT_URL_FORBIDDEN"
        with pytest.raises(errors.InvalidArgument) as raised:
            await allowed.fetch(f"http://photos.test:{image_server}/moved.png", "inputs[1].url")
        assert raised.value.reason == "INPUT_URL_FORBIDDEN"  # the redirect pointed inside
        assert raised.value.violations[0].field == "inputs[1].url"
        with pytest.raises(EdgeError) as too_big:
            await allowed.fetch(f"http://photos.test:{image_server}/endless.png", "inputs[0].url")
        assert too_big.value.reason == "INPUT_URL_TOO_LARGE"
    finally:
        await allowed.aclose()
        await rebinding.aclose()


def test_events_are_named_by_state_and_progress() -> None:
    running = job_pb2.Job(name="jobs/x", state=job_pb2.JOB_STATE_RUNNING)
    assert event_name(running, None) == "running"
    assert event_name(running, job_pb2.JOB_STATE_QUEUED) == "running"
    assert event_name(running, job_pb2.JOB_STATE_RUNNING) == "progress"
    done = job_pb2.Job(state=job_pb2.JOB_STATE_SUCCEEDED)
    assert event_name(done, job_pb2.JOB_STATE_RUNNING) == "succeeded"
    assert (
        frame(7, "running", {"a": "line\nbreak"}) == b'id: 7\nevent: running\ndata: {"a":"line\\nbreak"}\n\n'
    )
