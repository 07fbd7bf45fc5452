"""The gateway in front of the real identity service, with Google sign-in against a real OIDC provider.

The provider is the `oidc-provider-mock` package run in-process on loopback (its issuer is the URL it is
reached at); identity, PostgreSQL and Redis are the real ones, each on its own port or database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import pytest
from oidc_provider_mock import run_server_in_thread

from tests.e2e.identity.browser import CLIENT_ID, CLIENT_SECRET
from tests.support.edge_gateway import RunningGateway, gateway_settings, running_edge
from tests.support.servers import running_service

StartGateway = Callable[..., AbstractAsyncContextManager[RunningGateway]]


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[str]:
    """The base URL (and issuer) of a real OIDC provider on loopback."""
    with pytest.MonkeyPatch.context() as patch:
        # authlib refuses plain HTTP unless told that this is loopback testing.
        patch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
        with run_server_in_thread(port=0) as server:
            yield f"http://localhost:{server.server_port}"


@dataclass
class Stack:
    """Identity on a real port, its database, the Redis both share, and a way to start gateway replicas."""

    identity_addr: str
    database_url: str
    redis_url: str
    start_gateway: StartGateway


@pytest.fixture
async def stack(database_url: str, clean_redis: str, oidc_provider: str) -> AsyncIterator[Stack]:
    google = {
        "google_issuer": oidc_provider,
        "google_client_id": CLIENT_ID,
        "google_client_secret": CLIENT_SECRET,
    }
    async with running_service("identity", database_url, clean_redis, **google) as identity:
        addr = f"127.0.0.1:{identity.port}"

        @asynccontextmanager
        async def start(**extra: str) -> AsyncIterator[RunningGateway]:
            async with running_edge(gateway_settings(addr, clean_redis, **extra)) as running:
                await asyncio.wait_for(running.app.state.edge.feed.subscribed.wait(), 10)
                yield running

        yield Stack(addr, database_url, clean_redis, start)


@pytest.fixture
async def gateway(stack: Stack) -> AsyncIterator[RunningGateway]:
    async with stack.start_gateway() as running:
        yield running
