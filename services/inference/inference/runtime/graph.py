"""Execution order as ComfyUI picks it: a topological dissolve of the nodes the requested outputs need
(cached nodes are not pending), preferring a ready output node, then a node that unblocks an output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ExecutionList:
    def __init__(
        self, prompt: dict[str, Any], is_cached: Callable[[str], bool], is_output: Callable[[str], bool]
    ) -> None:
        self.prompt = prompt
        self.is_cached = is_cached
        self.is_output = is_output
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, bool]] = {}

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, str]] = []
        while stack:
            current = stack.pop()
            if current in self.pending:
                continue
            self.pending[current] = True
            self.block_count[current] = 0
            self.blocking[current] = {}
            for value in self.prompt[current]["inputs"].values():
                if isinstance(value, list) and len(value) == 2:
                    source = str(value[0])
                    if not self.is_cached(source):
                        stack.append(source)
                    links.append((source, current))
        for source, target in links:
            self._add_link(source, target)

    def _add_link(self, source: str, target: str) -> None:
        if self.is_cached(source):
            return
        self.add_node(source)
        if target not in self.blocking[source]:
            self.blocking[source][target] = True
            self.block_count[target] += 1

    def is_empty(self) -> bool:
        return not self.pending

    def next_node(self) -> str | None:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            return None
        for node_id in ready:
            if self.is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self.is_output(b) for b in self.blocking[node_id]):
                return node_id
        for node_id in ready:
            if any(self.is_output(b2) for b in self.blocking[node_id] for b2 in self.blocking[b]):
                return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for blocked in self.blocking.pop(node_id):
            self.block_count[blocked] -= 1
