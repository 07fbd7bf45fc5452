"""One execution as this replica holds it: its event log, which any number of streams follow."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from inference.domain import events as ev
from inference.domain.executions import ExecutionRequest
from servicekit import errors


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


class Execution:
    """The log of one execution; streams replay it and then follow it live until the terminal event."""

    def __init__(self, request: ExecutionRequest, prompt_id: str, fingerprint: str) -> None:
        self.request = request
        self.prompt_id = prompt_id
        self.fingerprint = fingerprint
        self.backend_id = ""
        self.submitted = False
        self.submit_time: datetime | None = None
        self.start_time: datetime | None = None
        self.cancel_reason: ev.CancelReason | None = None
        self.error: errors.DomainError | None = None
        self.task: asyncio.Task[None] | None = None
        self.finished_at: float | None = None
        self._log: list[ev.Event | None] = []
        self._changed = asyncio.Condition()

    @property
    def terminal(self) -> ev.Terminal | None:
        """The terminal event, once there is one."""
        last = self._log[-1] if self._log else None
        return last if isinstance(last, ev.TERMINAL_TYPES) else None

    @property
    def accepted(self) -> bool:
        """Whether the accepted event was emitted."""
        return bool(self._log)

    def timing(self) -> ev.Timing:
        """Submit, start and end times as of now."""
        return ev.Timing(self.submit_time, self.start_time, now())

    async def emit(self, event: ev.Event) -> None:
        """Appends `event` unless the log already ended, and wakes the followers."""
        if self.terminal is not None:
            return
        async with self._changed:
            self._log.append(event)
            if isinstance(event, ev.TERMINAL_TYPES):
                # Previews are only worth something live; drop them so finished executions stay small.
                self._log = [None if isinstance(e, ev.Preview) else e for e in self._log]
                self.finished_at = asyncio.get_running_loop().time()
            self._changed.notify_all()

    async def fail_before_accepted(self, error: errors.DomainError) -> None:
        """Records a problem found before `accepted`; every follower raises it as the call's status."""
        async with self._changed:
            self.error = error
            self.finished_at = asyncio.get_running_loop().time()
            self._changed.notify_all()

    def _has_news(self, seen: int) -> bool:
        return len(self._log) > seen or self.error is not None

    async def follow(self, attached: bool) -> AsyncIterator[ev.Event]:
        """The whole log from `accepted` on, then live events until the terminal one."""
        index = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._has_news, index))
                if self.error is not None and not self._log:
                    raise self.error
                batch = self._log[index:]
            for event in batch:
                index += 1
                if event is None:
                    continue
                if isinstance(event, ev.Accepted) and attached:
                    event = dataclasses.replace(event, attached=True)
                yield event
                if isinstance(event, ev.TERMINAL_TYPES):
                    return
