"""The edge's small parts on their own: limit specs, the TTL cache, revocation messages, response headers."""

from __future__ import annotations

import pytest
from starlette.types import Message, Receive, Scope, Send

from gateway.auth.cache import TtlCache
from gateway.auth.revocations import parse
from gateway.middleware import RequestContext, add_response_headers
from gateway.ratelimit import Limit, LimitSpecError, parse_plan_limits
from servicekit import metrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plan_limits_are_read_with_a_required_default() -> None:
    assert parse_plan_limits("default:60/60, pro:600/30") == {
        "default": Limit(60, 60.0),
        "pro": Limit(600, 30.0),
    }
    for bad in ("pro:600/60", "free:0/60", "free:10", "10/60", "free:x/y"):
        with pytest.raises(LimitSpecError):
            parse_plan_limits(bad)


def test_cache_entries_expire_and_a_tag_drops_exactly_its_entries() -> None:
    clock = Clock()
    cache: TtlCache[str] = TtlCache(10, clock)
    cache.put("a", "key a", ttl=5, tags={"api_key:apiKeys/a", "user:users/1"})
    cache.put("b", "key b", ttl=5, tags={"api_key:apiKeys/b", "user:users/1"})
    cache.put("c", "key c", ttl=5, tags={"api_key:apiKeys/c", "user:users/2"})
    cache.put("z", "never", ttl=0)

    assert cache.invalidate("api_key:apiKeys/a") == 1
    assert (cache.get("a"), cache.get("b"), cache.get("z")) == (None, "key b", None)
    assert cache.invalidate("user:users/1") == 1
    clock.now += 5
    assert cache.get("c") is None
    assert len(cache) == 0


def test_cache_keeps_the_most_recently_used_entries_when_full() -> None:
    cache: TtlCache[int] = TtlCache(2, Clock())
    cache.put("a", 1, ttl=9)
    cache.put("b", 2, ttl=9)
    cache.get("a")
    cache.put("c", 3, ttl=9)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_revocation_messages_name_every_tag_they_carry() -> None:
    message = '{"kind":"api_key","name":"apiKeys/k1","user":"users/u1","prefix":"cmfy_AbCdEfGh","time":"t"}'
    assert parse(message) == ["api_key:apiKeys/k1", "api_key:cmfy_AbCdEfGh"]
    assert parse(b'{"kind":"user","name":"users/u1","user":"users/u1","reason":"deleted"}') == [
        "user:users/u1"
    ]
    assert parse('{"kind":"grant","name":"grants/g"}') == []
    assert parse("not json") == []
    assert parse("[1]") == []


async def test_edge_headers_reach_the_response_with_or_without_the_request_context() -> None:
    limits = [(b"ratelimit-limit", b"60"), (b"ratelimit-remaining", b"59")]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        send = add_response_headers(scope, limits, send)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"ratelimit-limit", b"5")]})
        await send({"type": "http.response.body", "body": b""})

    for wrapped in (app, RequestContext(app, metrics.create("http"))):
        sent: list[Message] = []
        scope = {"type": "http", "method": "GET", "path": "/api/v1/x", "headers": []}
        await wrapped(scope, receive_nothing, sent_to(sent))

        headers = dict(sent[0]["headers"])
        assert headers[b"ratelimit-limit"] == b"5"  # the response's own value wins
        assert headers[b"ratelimit-remaining"] == b"59"


def sent_to(messages: list[Message]) -> Send:
    async def send(message: Message) -> None:
        messages.append(message)

    return send


async def receive_nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_a_cache_entry_tells_how_long_it_has_left() -> None:
    clock = Clock()
    cache: TtlCache[int] = TtlCache(4, clock)
    cache.put("a", 1, ttl=30)
    clock.now += 10
    assert (cache.time_left("a"), cache.time_left("b")) == (20, 0)
    clock.now += 25
    assert cache.time_left("a") == 0
