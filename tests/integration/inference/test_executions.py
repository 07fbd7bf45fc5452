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
from inference.service.executions import CancelOutcome, Executions
from inference.service.pool import Member, Pool
from inference.service.ports import Submission
from inference.service.record import now
from inference.service.validation import Validator
from servicekit import errors
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


def put_photo(storage: LocalStorage, key: str) -> tuple[InputFile, ...]:
    """Stores a small PNG under `key`; returns the inputs that give it to LoadImage as photo.png."""
    path = storage.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 200, 30)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return (InputFile("photo.png", key),)


async def run(executions: Executions, execution: ExecutionRequest) -> list[ev.Event]:
    """Every event of one Execute call, from the call to the end of its stream."""
    async with asyncio.timeout(30):
        return [event async for event in await executions.execute(execution)]


async def test_a_new_execution_starts_without_searching_the_backends(replicas: list[Replica]) -> None:
    replica = replicas[0]
    events = await run(replica.executions, request("jobs/new/attempts/1", new_execution=True))

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
    earlier = await run(first.executions, execution)

    resumed = await run(second.executions, execution)

    assert isinstance(earlier[-1], ev.Succeeded)
    assert isinstance(resumed[0], ev.Accepted)
    assert resumed[0].attached
    assert isinstance(resumed[-1], ev.Succeeded)
    assert resumed[-1].artifacts == earlier[-1].artifacts
    assert second.backend.lookups == 1
    assert second.backend.submissions == 0


async def test_executions_read_their_inputs_concurrently(replicas: list[Replica]) -> None:
    executions, storage = replicas[0].executions, replicas[0].storage
    held = storage.hold("uploads/held.png")
    slow = request("jobs/slow-inputs/attempts/1", INVERT, inputs=put_photo(storage, "uploads/held.png"))
    quick = request("jobs/quick-inputs/attempts/1", INVERT, inputs=put_photo(storage, "uploads/quick.png"))
    slow_events = asyncio.create_task(run(executions, slow))
    await held.wait_reached()

    quick_events = await asyncio.wait_for(run(executions, quick), 10)
    held.opened.set()

    assert isinstance(quick_events[-1], ev.Succeeded)
    assert isinstance((await slow_events)[-1], ev.Succeeded)


async def test_a_start_that_fails_fails_every_call_following_it_and_a_retry_starts_afresh(
    replicas: list[Replica],
) -> None:
    replica = replicas[0]
    gate = replica.storage.hold("uploads/late.png")
    execution = request(
        "jobs/late-input/attempts/1", INVERT, inputs=(InputFile("photo.png", "uploads/late.png"),)
    )
    calls = [asyncio.create_task(run(replica.executions, execution)) for _ in range(2)]
    await gate.wait_reached()
    gate.opened.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    put_photo(replica.storage, "uploads/late.png")

    retried = await run(replica.executions, execution)

    assert [type(o) for o in outcomes] == [errors.NotFound, errors.NotFound]
    assert [o.reason for o in outcomes if isinstance(o, errors.DomainError)] == ["INPUT_NOT_FOUND"] * 2
    assert isinstance(retried[0], ev.Accepted)
    assert not retried[0].attached
    assert isinstance(retried[-1], ev.Succeeded)
    assert replica.backend.submissions == 1


async def test_concurrent_calls_with_one_id_share_one_execution(replicas: list[Replica]) -> None:
    replica = replicas[0]
    gate = replica.storage.hold("uploads/shared.png")
    execution = request(
        "jobs/shared/attempts/1", INVERT, inputs=put_photo(replica.storage, "uploads/shared.png")
    )
    calls = [asyncio.create_task(run(replica.executions, execution)) for _ in range(3)]
    await gate.wait_reached()
    gate.opened.set()
    streams = await asyncio.gather(*calls)

    accepted = [events[0] for events in streams]
    assert [isinstance(a, ev.Accepted) and a.attached for a in accepted] == [False, True, True]
    finals = [events[-1] for events in streams]
    assert all(isinstance(f, ev.Succeeded) for f in finals)
    assert finals[0] == finals[1] == finals[2]
    assert (replica.backend.lookups, replica.backend.submissions) == (1, 1)


async def test_another_workflow_under_an_id_still_starting_is_a_conflict(replicas: list[Replica]) -> None:
    replica = replicas[0]
    gate = replica.storage.hold("uploads/first.png")
    execution = request(
        "jobs/conflict/attempts/1", INVERT, inputs=put_photo(replica.storage, "uploads/first.png")
    )
    first = asyncio.create_task(run(replica.executions, execution))
    await gate.wait_reached()

    with pytest.raises(errors.AlreadyExists) as raised:
        await replica.executions.execute(request("jobs/conflict/attempts/1", EMPTY))
    gate.opened.set()

    assert raised.value.reason == "EXECUTION_ID_CONFLICT"
    assert isinstance((await first)[-1], ev.Succeeded)


async def test_a_cancel_while_the_inputs_are_read_ends_the_execution_before_it_reaches_a_backend(
    replicas: list[Replica],
) -> None:
    replica = replicas[0]
    gate = replica.storage.hold("uploads/cancelled.png")
    inputs = put_photo(replica.storage, "uploads/cancelled.png")
    call = asyncio.create_task(
        run(replica.executions, request("jobs/cancelled/attempts/1", INVERT, inputs=inputs))
    )
    await gate.wait_reached()

    outcome, _ = await replica.executions.cancel("jobs/cancelled/attempts/1")
    events = await call
    gate.opened.set()

    assert outcome == CancelOutcome.REMOVED_FROM_QUEUE
    assert [type(e) for e in events] == [ev.Accepted, ev.Cancelled]
    assert replica.backend.submissions == 0
