"""The webhook HTTP sender against a real loopback server: the connection goes to the address that was
checked (never to a second DNS answer), forbidden targets are never contacted, redirects are not followed.

Name resolution is the one part replaced (by a scripted resolver): no DNS server here can be made to answer
differently between two lookups, which is exactly the rebinding case the sender must resist.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from jobs.adapters.webhook_http import Address, HttpPoster
from tests.support.infra import free_port

LOOPBACK = ipaddress.ip_address("127.0.0.1")
PUBLIC = ipaddress.ip_address("93.184.216.34")


@dataclass
class Server:
    port: int
    hosts: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


SERVER = web.AppKey("server", Server)


async def hook(request: web.Request) -> web.StreamResponse:
    server = request.app[SERVER]
    server.hosts.append(request.headers["Host"])
    server.authorizations.append(request.headers.get("Authorization", ""))
    server.bodies.append(await request.read())
    if request.path == "/moved":
        raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
    if request.path == "/slow":
        await asyncio.sleep(5)
    return web.Response(status=202, body=b"z" * 4096)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server(free_port())
    app = web.Application()
    app[SERVER] = state
    app.router.add_post("/{tail:.*}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", state.port).start()
    yield state
    await runner.cleanup()


class Resolver:
    """Answers from a script, one answer per lookup, and counts lookups."""

    def __init__(self, *answers: list[Address]) -> None:
        self.answers = list(answers)
        self.lookups = 0

    async def __call__(self, host: str, port: int) -> list[Address]:
        self.lookups += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def test_the_request_goes_to_the_checked_address_with_the_original_host(server: Server) -> None:
    resolver = Resolver([LOOPBACK], [PUBLIC])  # a second lookup would answer elsewhere
    poster = HttpPoster(frozenset({"hooks.test"}), timeout_seconds=2, resolver=resolver)
    try:
        url = f"http://dev:pw@hooks.test:{server.port}/in?x=1"
        outcome = await poster.post(url, {"webhook-id": "evt"}, b"{}")
    finally:
        await poster.aclose()
    assert resolver.lookups == 1
    assert server.hosts == [f"hooks.test:{server.port}"]
    assert server.bodies == [b"{}"]
    assert server.authorizations == ["Basic " + base64.b64encode(b"dev:pw").decode()]
    assert outcome.http_status == 202
    assert outcome.succeeded
    assert outcome.latency is not None
    assert outcome.response_excerpt == "z" * 1024


@pytest.mark.parametrize(
    ("url", "answer", "why"),
    [
        (
            "https://evil.test:{port}/hook",
            [PUBLIC, LOOPBACK],
            "evil.test resolves to 127.0.0.1 is a loopback",
        ),
        ("https://evil.test:{port}/hook", [ipaddress.ip_address("10.0.0.1")], "private address"),
        ("https://evil.test:{port}/hook", [ipaddress.ip_address("::ffff:127.0.0.1")], "embeds"),
        ("https://10.0.0.1:{port}/hook", [LOOPBACK], "not a public address"),
        ("http://example.com:{port}/hook", [PUBLIC], "use https"),
        ("https://localhost:{port}/hook", [LOOPBACK], "internal host name"),
    ],
)
async def test_forbidden_targets_are_refused_without_a_request(
    server: Server, url: str, answer: list[Address], why: str
) -> None:
    poster = HttpPoster(frozenset({"127.0.0.1"}), timeout_seconds=2, resolver=Resolver(answer))
    try:
        outcome = await poster.post(url.format(port=server.port), {}, b"{}")
    finally:
        await poster.aclose()
    assert outcome.refused
    assert outcome.http_status == 0
    assert why in outcome.error_message
    assert outcome.error_message.startswith("refused: ")
    assert server.hosts == []


async def test_redirects_are_not_followed_and_slow_receivers_time_out(server: Server) -> None:
    poster = HttpPoster(frozenset({"127.0.0.1"}), timeout_seconds=0.5)
    try:
        moved = await poster.post(f"http://127.0.0.1:{server.port}/moved", {}, b"{}")
        slow = await poster.post(f"http://127.0.0.1:{server.port}/slow", {}, b"{}")
        closed = await poster.post(f"http://127.0.0.1:{free_port()}/hook", {}, b"{}")
    finally:
        await poster.aclose()
    assert moved.http_status == 302
    assert not moved.succeeded
    assert not moved.refused
    assert server.hosts == [f"127.0.0.1:{server.port}"] * 2  # /moved and /slow, never the redirect target
    assert (slow.http_status, slow.error_message, slow.latency) == (0, "read timeout after 0.5s", None)
    assert closed.http_status == 0
    assert closed.error_message.startswith("ConnectError")


async def test_a_name_that_does_not_resolve_is_retried_not_refused() -> None:
    async def failing(host: str, port: int) -> list[Address]:
        raise OSError("Name or service not known")

    poster = HttpPoster(resolver=failing)
    try:
        outcome = await poster.post("https://nowhere.test/hook", {}, b"{}")
    finally:
        await poster.aclose()
    assert not outcome.refused
    assert outcome.error_message.startswith("could not resolve nowhere.test")
