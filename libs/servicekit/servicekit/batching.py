"""Natural batching: callers that arrive while a batch is being written share the next one.

A lone caller goes at once, so an idle service adds no delay; under load every database round trip, commit
and RPC is shared by the callers that queued up behind the batch in flight. Nothing waits on a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from servicekit import errors

Item = TypeVar("Item")
Result = TypeVar("Result")

# Each item of a batch gets its own outcome: a result, or the exception its caller should see.
Run = Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]]


class Batcher(Generic[Item, Result]):
    """Hands items to `run` in batches of at most `max_size`, one batch at a time, in arrival order."""

    def __init__(self, run: Run[Item, Result], max_size: int = 64) -> None:
        self.run = run
        self.max_size = max_size
        self.pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self.worker: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """The outcome of `item`; if the caller gives up waiting, the item's batch still completes (the
        batch runs in its own task; only the caller's future is cancelled)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self.worker is None:
            self.worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self.pending:
                batch, self.pending = self.pending[: self.max_size], self.pending[self.max_size :]
                try:
                    outcomes = await self.run([item for item, _ in batch])
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                _settle(batch, outcomes)
        except asyncio.CancelledError:
            # The service is stopping: nobody is left to write these, so their callers hear it now.
            waiting = batch + self.pending
            self.pending = []
            _settle(
                waiting,
                [errors.Unavailable("the service is stopping; retry", reason="STOPPING")] * len(waiting),
            )
            raise
        finally:
            self.worker = None


def _settle(
    batch: list[tuple[Item, asyncio.Future[Result]]], outcomes: Sequence[Result | BaseException]
) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
