"""Rate limits and the revocation feed at the edge, with real Redis and the identity fake."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from servicekit import logging
from tests.support.fake_identity import FakeIdentityState
from tests.support.infra import free_port
from tests.unit.gateway.conftest import StartGateway
from tests.unit.gateway.test_edge_auth import bearer

Identity = tuple[FakeIdentityState, str]


async def test_a_plans_limit_answers_429_with_headers_and_recovers(
    identity: Identity, start_gateway: StartGateway
) -> None:
    state, _ = identity
    key = state.add_key(state.add_user("ida@example.com", plan="free"))
    async with (
        start_gateway(rate_limits="default:100/60,free:3/1.5") as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        allowed = [await client.get("/api/v1/me", headers=bearer(key)) for _ in range(3)]
        refused = await client.get("/api/v1/me", headers=bearer(key))
        loop = asyncio.get_running_loop()
        started = loop.time()
        while (again := await client.get("/api/v1/me", headers=bearer(key))).status_code == 429:
            assert loop.time() - started < 5, "the bucket never refilled"
            await asyncio.sleep(0.1)

    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["ratelimit-remaining"] for r in allowed] == ["2", "1", "0"]
    assert {r.headers["ratelimit-limit"] for r in allowed} == {"3"}
    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["reason"] == "RATE_LIMITED"
    assert refused.headers["retry-after"] == "1"
    assert (refused.headers["ratelimit-limit"], refused.headers["ratelimit-remaining"]) == ("3", "0")
    assert refused.headers["ratelimit-reset"] == "2"
    assert again.status_code == 200


async def test_the_client_ip_has_a_bucket_of_its_own(identity: Identity, start_gateway: StartGateway) -> None:
    state, _ = identity
    user = state.add_user("jo@example.com", plan="pro")
    keys = [state.add_key(user) for _ in range(3)]
    async with (
        start_gateway(rate_limit_ip="2/60") as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        replies = [await client.get("/api/v1/me", headers=bearer(k)) for k in keys]
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert replies[2].headers["ratelimit-limit"] == "2"


async def test_failed_authentications_from_one_address_are_limited(
    identity: Identity, start_gateway: StartGateway
) -> None:
    state, _ = identity
    good = state.add_key(state.add_user("kim@example.com"))
    async with (
        start_gateway(rate_limit_auth_failures="3/60") as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        guesses = [
            await client.get("/api/v1/me", headers=bearer(f"cmfy_guess{i:03}_{'x' * 43}")) for i in range(4)
        ]
        fresh_good_key = await client.get("/api/v1/me", headers=bearer(good))

    assert [r.status_code for r in guesses] == [401, 401, 401, 429]
    assert guesses[3].json()["error"]["details"]["reason"] == "AUTH_ATTEMPTS_EXCEEDED"
    assert int(guesses[3].headers["retry-after"]) >= 1
    assert state.calls["AuthenticateApiKey"] == 3, "the blocked guess must not reach identity"
    assert fresh_good_key.status_code == 429


async def test_a_repeated_wrong_key_reaches_identity_once_per_negative_ttl(
    identity: Identity, client: httpx.AsyncClient
) -> None:
    state, _ = identity
    wrong = f"cmfy_AAAAAAAA_{'y' * 43}"
    replies = [await client.get("/api/v1/me", headers=bearer(wrong)) for _ in range(3)]
    assert [r.status_code for r in replies] == [401, 401, 401]
    assert state.calls["AuthenticateApiKey"] == 1


async def test_without_redis_requests_pass_and_credentials_are_cached_only_briefly(
    identity: Identity, start_gateway: StartGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    state, _ = identity
    key = state.add_key(state.add_user("lou@example.com"))
    logging.configure("test")
    async with (
        start_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limits="default:1/60") as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        replies = [await client.get("/api/v1/me", headers=bearer(key)) for _ in range(3)]
        ready = await client.get("/ready")
        edge = gateway.app.state.edge
        assert not edge.feed.healthy
        assert edge.authenticator.ttl(30.0) == 1.0

    assert [r.status_code for r in replies] == [200, 200, 200]
    assert "ratelimit-limit" not in replies[0].headers
    assert ready.json()["redis"] == "unavailable"
    assert "ratelimit.unavailable" in capsys.readouterr().out


async def test_the_feed_reconnects_after_a_redis_outage_and_forgets_everything(
    identity: Identity, start_gateway: StartGateway, clean_redis: str
) -> None:
    state, _ = identity
    key = state.add_key(state.add_user("max@example.com"))
    async with RedisProxy(clean_redis) as proxied, start_gateway(redis_url=proxied.url) as gateway:
        edge = gateway.app.state.edge
        await asyncio.wait_for(edge.feed.subscribed.wait(), 5)
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            assert (await client.get("/api/v1/me", headers=bearer(key))).status_code == 200
            assert len(edge.authenticator.cache) == 1
            await proxied.cut()
            await until(lambda: not edge.feed.healthy)
            assert edge.authenticator.ttl(30.0) == 1.0
            proxied.resume()
            await asyncio.wait_for(edge.feed.subscribed.wait(), 10)
            assert len(edge.authenticator.cache) == 0
            assert edge.authenticator.ttl(30.0) == 30.0


async def until(condition: object, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


class RedisProxy:
    """A TCP proxy in front of Redis whose connections the test can cut, to stage an outage."""

    def __init__(self, redis_url: str) -> None:
        target = httpx.URL(redis_url)
        self.target = (target.host, target.port or 6379)
        self.database = target.path.strip("/") or "0"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/{self.database}"
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RedisProxy:
        await self._listen()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.cut()

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))

    async def cut(self) -> None:
        """Stops accepting and drops every open connection."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    def resume(self) -> None:
        """Accepts connections again."""
        asyncio.get_running_loop().create_task(self._listen())
