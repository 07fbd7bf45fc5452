"""Output caching as ComfyUI does it: a node's result is reused when its class, its widget values, its
`is_changed` value and everything upstream are unchanged. Only signatures used by the current prompt are
kept, so running a different graph evicts the previous one (capture 11)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from inference.runtime.files import DataDirs
from inference.runtime.nodes.base import REGISTRY


@dataclass
class CacheEntry:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None  # {"meta": ..., "output": ...} for nodes with UI output


class OutputCache:
    def __init__(self) -> None:
        self._entries: dict[str, CacheEntry] = {}
        self._signatures: dict[str, str] = {}

    def set_prompt(self, prompt: dict[str, Any], dirs: DataDirs) -> None:
        """Compute every node's signature for this prompt and drop entries the prompt does not use."""
        self._signatures = {}
        for node_id in prompt:
            self._signature(prompt, node_id, dirs, [])
        used = set(self._signatures.values())
        self._entries = {key: value for key, value in self._entries.items() if key in used}

    def get(self, node_id: str) -> CacheEntry | None:
        key = self._signatures.get(node_id)
        return None if key is None else self._entries.get(key)

    def set(self, node_id: str, entry: CacheEntry) -> None:
        self._entries[self._signatures[node_id]] = entry

    def clear(self) -> None:
        self._entries = {}

    def _signature(self, prompt: dict[str, Any], node_id: str, dirs: DataDirs, visiting: list[str]) -> str:
        if node_id in self._signatures:
            return self._signatures[node_id]
        if node_id in visiting or node_id not in prompt:
            return f"<unresolved {node_id}>"
        data = prompt[node_id]
        definition = REGISTRY[data["class_type"]]
        parts: dict[str, Any] = {"class": data["class_type"], "changed": _is_changed(definition, data, dirs)}
        if definition.has_unique_id:
            parts["id"] = node_id
        inputs = {}
        for name, value in sorted(data["inputs"].items()):
            if isinstance(value, list) and len(value) == 2:
                upstream = self._signature(prompt, str(value[0]), dirs, [*visiting, node_id])
                inputs[name] = ["link", upstream, value[1]]
            else:
                inputs[name] = value
        parts["inputs"] = inputs
        key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()
        self._signatures[node_id] = key
        return key


def _is_changed(definition: Any, data: dict[str, Any], dirs: DataDirs) -> Any:
    if definition.is_changed is None:
        return ""
    literals = {k: v for k, v in data["inputs"].items() if not isinstance(v, list)}
    try:
        return definition.is_changed(dirs, **literals)
    except Exception:
        return uuid.uuid4().hex
