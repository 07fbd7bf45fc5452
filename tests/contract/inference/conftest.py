"""Fixture: a fresh local runtime per test (its own data dir, counters and cache)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.inference.harness import RuntimeClient, running_runtime


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[RuntimeClient]:
    async with running_runtime(tmp_path / "data") as client:
        yield client
