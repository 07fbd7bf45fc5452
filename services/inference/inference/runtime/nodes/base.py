"""Node definitions: the spec (from the captured /object_info), the function, and what a node may do while
it runs (report progress, send a preview or a text, notice an interrupt)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from inference.runtime.files import DataDirs


class InterruptedError_(Exception):
    """Raised inside a node when the running prompt was interrupted."""


@dataclass
class Result:
    """A node's outputs (one per output slot) and its optional UI data (shown in `executed`)."""

    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None = None


@dataclass
class NodeContext:
    """What a running node can see and do. `state` persists per node id between prompts."""

    node_id: str
    dirs: DataDirs
    prompt: dict[str, Any]
    extra_pnginfo: Any
    state: dict[str, Any]
    report_progress: Callable[[int, int, tuple[str, Any] | None], None]
    report_text: Callable[[str], None]
    check_interrupt: Callable[[], None]


NodeFn = Callable[..., Result]


@dataclass(frozen=True)
class NodeDef:
    name: str
    fn: NodeFn
    spec: dict[str, Any]
    # Inputs handed to a custom validator; ComfyUI then skips range and choice checks for them.
    validate: Callable[..., bool | str] | None = None
    is_changed: Callable[..., Any] | None = None
    hidden: tuple[str, ...] = field(default=())

    @property
    def return_types(self) -> tuple[Any, ...]:
        return tuple(self.spec["output"])

    @property
    def is_output(self) -> bool:
        return bool(self.spec.get("output_node"))

    @property
    def has_unique_id(self) -> bool:
        return "UNIQUE_ID" in [_hidden_type(v) for v in self.spec["input"].get("hidden", {}).values()]


def _hidden_type(value: Any) -> str:
    return value[0] if isinstance(value, list) else value


_SPECS: dict[str, Any] | None = None
REGISTRY: dict[str, NodeDef] = {}


def specs() -> dict[str, Any]:
    global _SPECS
    if _SPECS is None:
        text = resources.files("inference.runtime").joinpath("specs", "object_info.json").read_text("utf-8")
        _SPECS = json.loads(text)
    return _SPECS


def node(
    name: str,
    *,
    validate: Callable[..., bool | str] | None = None,
    is_changed: Callable[..., Any] | None = None,
) -> Callable[[NodeFn], NodeFn]:
    """Register `fn` as the implementation of the ComfyUI node `name` (its spec must be captured)."""

    def register(fn: NodeFn) -> NodeFn:
        REGISTRY[name] = NodeDef(
            name=name, fn=fn, spec=specs()[name], validate=validate, is_changed=is_changed
        )
        return fn

    return register


def image_result(*values: Any, ui: dict[str, Any] | None = None) -> Result:
    return Result(outputs=tuple(values), ui=ui)


def as_float32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)
