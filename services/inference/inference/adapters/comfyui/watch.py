"""A subscription to the events of one prompt, fed from the backend socket and from /history recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from inference.domain import prompts as p


class PromptWatch:
    """Delivers each prompt event once, in order, ending with one final event.

    Events can arrive twice (a live frame and the same fact recovered from /history after a gap); outputs are
    de-duplicated by node id and everything after the final event is dropped.
    """

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self.created = time.monotonic()
        self.last_seen = self.created
        self.started = False
        self.done = False
        self.position: int | None = None
        self._outputs: set[str] = set()
        self._queue: asyncio.Queue[p.PromptEvent] = asyncio.Queue()

    def push(self, event: p.PromptEvent) -> None:
        """Delivers `event` unless it repeats something already delivered."""
        if self.done:
            return
        self.last_seen = time.monotonic()
        if isinstance(event, p.PromptQueued):
            if self.started or event.position == self.position:
                return
            self.position = event.position
        elif isinstance(event, p.PromptStarted):
            if self.started:
                return
            self.started = True
        elif isinstance(event, p.NodeOutput):
            if event.node_id in self._outputs:
                return
            self._outputs.add(event.node_id)
        elif isinstance(event, p.FINAL_PROMPT_EVENTS):
            self.done = True
        self._queue.put_nowait(event)

    def seen(self) -> None:
        """Notes that the backend said something about this prompt."""
        self.last_seen = time.monotonic()

    async def __aiter__(self) -> AsyncIterator[p.PromptEvent]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, p.FINAL_PROMPT_EVENTS):
                return
