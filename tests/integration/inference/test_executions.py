"""The Execute use case against the local runtime, with the real ComfyUI adapter, pool and file storage.

The adapter counts its searches for earlier prompts and its submissions, and the storage can hold a read of
chosen keys, so a test can keep one start inside its preparation while others go on.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from inference.adapters import images
from inference.adapters.comfyui.backend import ComfyUIBackend
from inference.adapters.drains import MemoryDrains
from inference.adapters.local_runtime import LocalRuntime
from inference.domain import events as ev
from inference.domain.backends import BackendState, Kind
from inference.domain.executions import ExecutionRequest, InputFile
from inference.service.executions import Executions
from inference.service.pool import Member, Pool
from inference.service.ports import Submission
from inference.service.record import now
from inference.service.validation import Validator
from servicekit.storage import LocalStorage

INVERT = json.dumps(
    {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inverted"}},
    }
)
EMPTY = json.dumps(
    {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "empty"}},
    }
)


class CountingBackend(ComfyUIBackend):
    """The real adapter, counting its searches for earlier prompts and its submissions."""

    def __init__(self, name: str, url: str, client_id: str) -> None:
        super().__init__(name, url, client_id)
        self.lookups = 0
        self.submissions = 0

    async def find_workflow(self, prompt_id: str) -> dict[str, Any] | None:
        self.lookups += 1
        return await super().find_workflow(prompt_id)

    async def submit(self, prompt_id: str, workflow: dict[str, Any], previews: bool) -> Submission:
        self.submissions += 1
        return await super().submit(prompt_id, workflow, previews)


class Gate:
    """Holds the reads of one key: `reached` is set once a read waits, which goes on when `opened` is set."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    async def wait_reached(self) -> None:
        await asyncio.wait_for(self.reached.wait(), 10)


class GatedStorage(LocalStorage):
    """Files under a directory; a read of a held key waits at its gate."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gates: dict[str, Gate] = {}

    def hold(self, key: str) -> Gate:
        """Makes the reads of `key` wait until the returned gate opens."""
        self.gates[key] = Gate()
        return self.gates[key]

    async def get(self, key: str) -> bytes:
        gate = self.gates.get(key)
        if gate is not None:
            gate.reached.set()
            await gate.opened.wait()
        return await super().get(key)


class Replica:
    """One replica's use case over the shared runtime: its executions, adapter and storage."""

    def __init__(self, executions: Executions, backend: CountingBackend, storage: GatedStorage) -> None:
        self.executions = executions
        self.backend = backend
        self.storage = storage


@pytest.fixture(scope="module")
async def runtime(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalRuntime]:
    started = LocalRuntime(tmp_path_factory.mktemp("runtime"))
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def replicas(runtime: LocalRuntime, tmp_path: Path) -> AsyncIterator[list[Replica]]:
    """Two replicas sharing the runtime and the storage, as after a restart or a takeover."""
    storage = GatedStorage(tmp_path / "storage")
    built, pools = [], []
    for index in range(2):
        backend = CountingBackend("local", runtime.url, f"inference-test-{index}-{tmp_path.name}")
        pool = Pool(
            [Member(backend, BackendState("local", runtime.url, Kind.LOCAL_RUNTIME, now()))], MemoryDrains()
        )
        await pool.start()
        for _ in range(1000):
            if backend.connected:
                break
            await asyncio.sleep(0.01)
        await pool.probe_all()  # healthy only once the socket is connected
        pools.append(pool)
        built.append(Replica(Executions(pool, Validator(pool), storage, images.probe), backend, storage))
    yield built
    for replica, pool in zip(built, pools, strict=True):
        await replica.executions.close()
        await pool.close()


def request(execution_id: str, workflow: str = EMPTY, **kwargs: Any) -> ExecutionRequest:
    return ExecutionRequest(execution_id, workflow, f"outputs/{execution_id.replace('/', '_')}", **kwargs)


def photo(storage: LocalStorage, key: str) -> tuple[InputFile, ...]:
    path = storage.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 200, 30)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return (InputFile("photo.png", key),)


async def collect(events: AsyncIterator[ev.Event]) -> list[ev.Event]:
    async with asyncio.timeout(30):
        return [event async for event in events]


async def test_a_new_execution_starts_without_searching_the_backends(replicas: list[Replica]) -> None:
    replica = replicas[0]
    events = await collect(
        await replica.executions.execute(request("jobs/new/attempts/1", new_execution=True))
    )

    assert isinstance(events[0], ev.Accepted)
    assert not events[0].attached
    assert isinstance(events[-1], ev.Succeeded)
    assert replica.backend.lookups == 0
    assert replica.backend.submissions == 1


async def test_an_execution_not_known_new_reattaches_to_the_prompt_an_earlier_call_submitted(
    replicas: list[Replica],
) -> None:
    first, second = replicas
    execution = request("jobs/resumed/attempts/1")
    earlier = await collect(await first.executions.execute(execution))

    resumed = await collect(await second.executions.execute(execution))

    assert isinstance(earlier[-1], ev.Succeeded)
    assert isinstance(resumed[0], ev.Accepted)
    assert resumed[0].attached
    assert isinstance(resumed[-1], ev.Succeeded)
    assert resumed[-1].artifacts == earlier[-1].artifacts
    assert second.backend.lookups == 1
    assert second.backend.submissions == 0
