"""One stack of the whole API product per test module, on real ports with real PostgreSQL, Redis and the
local runtime; each test works as its own users, so tests sharing the stack never see each other's jobs."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from redis.asyncio import Redis

from tests.support import databases
from tests.support.jobs_stack import JobsStack, running_jobs_stack


@pytest.fixture(scope="module")
async def stack(
    postgres_url: str, redis_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[JobsStack]:
    name = databases.unique_name("jobs_e2e")
    database_url = await databases.create_database(postgres_url, name, template=template_database)
    client = Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    jobs = {"dispatch_concurrency": "2", "max_running_per_owner": "1", "webhook_retry_delays": "0.3,0.3,0.3"}
    try:
        async with running_jobs_stack(
            database_url, redis_url, tmp_path_factory.mktemp("jobs-e2e"), jobs=jobs
        ) as running:
            yield running
    finally:
        await databases.drop_database(postgres_url, name)


@dataclass
class Developer:
    """A user with an API key and a client of the gateway."""

    email: str
    key: str
    http: httpx.AsyncClient


@pytest.fixture
async def developer(stack: JobsStack) -> AsyncIterator[Developer]:
    email = f"dev-{uuid.uuid4().hex[:8]}@example.com"
    key = await stack.api_key(email)
    async with stack.client(key) as http:
        yield Developer(email, key, http)


def photo(width: int = 96, height: int = 64, fmt: str = "PNG") -> bytes:
    """A colourful test photo: gradients in every channel, mid-grey on average."""
    x = np.linspace(0, 255, width)[None, :]
    y = np.linspace(0, 255, height)[:, None]
    rgb = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.full((height, width), 128.0),
        ],
        axis=-1,
    )
    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def pixels(data: bytes) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


async def upload(
    http: httpx.AsyncClient, data: bytes, name: str = "photo.png", mime: str = "image/png"
) -> Any:
    reply = await http.post("/api/v1/uploads", files={"file": (name, data, mime)})
    assert reply.status_code == 201, reply.text
    return reply.json()


async def events(http: httpx.AsyncClient, job_id: str, last_event_id: str = "") -> list[dict[str, Any]]:
    """Every SSE event of a job's stream until the server ends it: {id, event, data}."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with http.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if not line:
                if "event" in current:
                    found.append(current)
                current = {}
            elif line.startswith("id: "):
                current["id"] = line[4:]
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
    return found


def job_id(job: dict[str, Any]) -> str:
    return str(job["name"]).removeprefix("jobs/")


def slow_workflow(blurs: int = 6, size: int = 1536) -> dict[str, Any]:
    """An input-free workflow of several seconds on the local runtime, with a node boundary every second."""
    graph: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": 123},
        }
    }
    for index in range(blurs):
        graph[str(index + 2)] = {
            "class_type": "ImageBlur",
            "inputs": {"image": [str(index + 1), 0], "blur_radius": 31, "sigma": 5.0},
        }
    graph["90"] = {
        "class_type": "ImageScaleBy",
        "inputs": {"image": [str(blurs + 1), 0], "upscale_method": "area", "scale_by": 0.05},
    }
    graph["99"] = {"class_type": "SaveImage", "inputs": {"images": ["90", 0], "filename_prefix": "slow"}}
    return graph


def quick_workflow(color: int = 0x336699) -> dict[str, Any]:
    """An input-free workflow that finishes at once."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": color},
        },
        "9": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "quick"}},
    }
