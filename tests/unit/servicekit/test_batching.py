"""Callers that arrive while a batch is in flight share the next one; each gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from servicekit import errors
from servicekit.batching import Batcher


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def run(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        await self.gate.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_a_lone_caller_goes_at_once_and_later_arrivals_share_the_next_batch() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run, max_size=3)
    recorder.gate.clear()
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.submit(i)) for i in (2, 4, 6, 8)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == 0
    assert [await t for t in rest] == [20, 40, 60, 80]
    assert recorder.batches == [[0], [2, 4, 6], [8]]


async def test_each_caller_gets_its_own_outcome_and_a_failed_run_fails_its_whole_batch() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert [o if isinstance(o, int) else str(o) for o in outcomes] == [0, "odd 1", 20, "odd 3"]

    async def broken(items: list[int]) -> list[int | BaseException]:
        raise errors.Unavailable("down", reason="DOWN")

    failing: Batcher[int, int] = Batcher(broken)
    outcomes = await asyncio.gather(*(failing.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, errors.Unavailable) for o in outcomes)


async def test_a_caller_that_gives_up_does_not_stop_its_batch() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    recorder.gate.clear()
    impatient = asyncio.create_task(batcher.submit(2))
    patient = asyncio.create_task(batcher.submit(4))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    recorder.gate.set()
    assert await patient == 40
    assert recorder.batches == [[2, 4]]
