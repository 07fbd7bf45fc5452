"""Session-wide real infrastructure: PostgreSQL, Redis, and a migrated template database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from tests.support import databases
from tests.support.infra import postgres_server, redis_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server URL for the session."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server URL for the session; tests that use it start from an empty database."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
async def template_database(postgres_url: str) -> AsyncIterator[str]:
    """A database with every schema migrated, cloned by each test."""
    name = await databases.migrated_template(postgres_url)
    yield name
    await databases.drop_database(postgres_url, name)


@pytest.fixture
async def database_url(postgres_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, fully migrated database of this test's own."""
    name = databases.unique_name()
    url = await databases.create_database(postgres_url, name, template=template_database)
    yield url
    await databases.drop_database(postgres_url, name)


@pytest.fixture
async def clean_redis(redis_url: str) -> str:
    """The session's Redis, emptied before the test."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    return redis_url
