"""Fixtures of the jobs context's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.adapters.tables import SCHEMA_NAME
from servicekit import db


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the jobs schema of a freshly migrated database."""
    engine = db.create_engine(database_url, SCHEMA_NAME)
    yield engine
    await engine.dispose()
