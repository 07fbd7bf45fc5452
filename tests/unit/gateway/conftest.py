"""The gateway in front of the in-memory identity fake (tests.support.fake_identity), with real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from tests.support.edge_gateway import RunningGateway, gateway_settings, running_edge
from tests.support.fake_identity import FakeIdentityState, fake_identity_app
from tests.support.servers import serving

StartGateway = Callable[..., AbstractAsyncContextManager[RunningGateway]]


@pytest.fixture
async def identity() -> AsyncIterator[tuple[FakeIdentityState, str]]:
    """The fake's state and its address."""
    state = FakeIdentityState()
    async with serving(fake_identity_app(state)) as server:
        yield state, f"127.0.0.1:{server.port}"


@pytest.fixture
def start_gateway(identity: tuple[FakeIdentityState, str], clean_redis: str) -> StartGateway:
    """Starts a gateway replica with extra settings; every replica shares the fake and the Redis."""

    @asynccontextmanager
    async def start(**extra: str) -> AsyncIterator[RunningGateway]:
        extra.setdefault("redis_url", clean_redis)
        async with running_edge(gateway_settings(identity[1], **extra)) as running:
            if running.app.state.edge.redis is not None and extra["redis_url"] == clean_redis:
                await asyncio.wait_for(running.app.state.edge.feed.subscribed.wait(), 10)
            yield running

    return start


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> AsyncIterator[RunningGateway]:
    async with start_gateway() as running:
        yield running


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        yield http
