"""The prompt queue with ComfyUI's semantics: a heap ordered by `number` (its raw list is what GET /queue
shows, hence "unsorted"), at most one running item, history in insertion order, and a `status` broadcast
whenever the queue changes."""

from __future__ import annotations

import asyncio
import copy
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000


@dataclass(order=True)
class QueueItem:
    number: float
    prompt_id: str
    seq: int
    prompt: dict[str, Any] = field(compare=False)
    extra_data: dict[str, Any] = field(compare=False)
    outputs: list[str] = field(compare=False)
    sensitive: dict[str, Any] = field(compare=False, default_factory=dict)

    def public(self) -> list[Any]:
        """The 5-element array ComfyUI shows in /queue and /history (no sensitive keys)."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self.pending: list[QueueItem] = []
        self.running: dict[int, QueueItem] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.flags: dict[str, Any] = {}
        self.number = 0
        self._seq = 0
        self._task_counter = 0
        self._wakeup = asyncio.Event()

    def next_number(self, requested: Any, front: bool) -> float | int:
        """ComfyUI advances its counter only when no explicit `number` was given."""
        if requested is not None:
            return float(requested)
        number = -self.number if front else self.number
        self.number += 1
        return number

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self.pending, item)
        self._on_change()
        self._wakeup.set()

    def make_item(
        self,
        number: float,
        prompt_id: str,
        prompt: dict[str, Any],
        extra: dict[str, Any],
        outputs: list[str],
        sensitive: dict[str, Any],
    ) -> QueueItem:
        self._seq += 1
        return QueueItem(number, prompt_id, self._seq, prompt, extra, outputs, sensitive)

    async def get(self) -> tuple[QueueItem, int]:
        while not self.pending:
            self._wakeup.clear()
            await self._wakeup.wait()
        item = heapq.heappop(self.pending)
        task_id = self._task_counter
        self._task_counter += 1
        self.running[task_id] = item
        self._on_change()
        return item, task_id

    def task_done(self, task_id: int, result: dict[str, Any], status: dict[str, Any]) -> None:
        item = self.running.pop(task_id)
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        self.history[item.prompt_id] = {
            "prompt": copy.deepcopy(item.public()),
            "outputs": {},
            "status": status,
            **result,
        }
        self._on_change()

    def remaining(self) -> int:
        return len(self.pending) + len(self.running)

    def running_ids(self) -> list[str]:
        return [item.prompt_id for item in self.running.values()]

    def wipe(self) -> None:
        self.pending = []
        self._on_change()

    def delete(self, prompt_id: str) -> bool:
        for index, item in enumerate(self.pending):
            if item.prompt_id == prompt_id:
                self.pending.pop(index)
                heapq.heapify(self.pending)
                self._on_change()
                return True
        return False

    def get_history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        out: dict[str, Any] = {}
        for index, (key, value) in enumerate(self.history.items()):
            if index >= offset:
                out[key] = value
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def set_flag(self, name: str, value: Any) -> None:
        self.flags[name] = value

    def take_flags(self) -> dict[str, Any]:
        flags, self.flags = self.flags, {}
        return flags
