"""What the use cases need from the outside world; the adapters implement these."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from inference.domain import prompts as p
from inference.domain.catalog import Catalog
from inference.domain.violations import Violation
from servicekit.storage import StoredObject


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says."""

    content_type: str
    width: int
    height: int
    extension: str


@dataclass(frozen=True)
class Submission:
    """A backend's answer to an accepted prompt; non-empty `rejected` means it accepted only part of it."""

    prompt_id: str
    number: float
    rejected: list[Violation] = field(default_factory=list)


class Storage(Protocol):
    """The object store."""

    async def get(self, key: str) -> bytes: ...

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject: ...

    async def check(self) -> None: ...


class ImageProbe(Protocol):
    """Reads an image header; None when the bytes are not an image."""

    def __call__(self, data: bytes) -> ImageInfo | None: ...


class Watch(Protocol):
    """The events of one prompt, ending with a final one."""

    prompt_id: str
    done: bool

    def __aiter__(self) -> AsyncIterator[p.PromptEvent]: ...


class Backend(Protocol):
    """One ComfyUI-compatible server."""

    name: str
    url: str
    connected: bool
    running_prompt: str | None
    queue_remaining: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def cached_catalog(self) -> Catalog | None: ...

    async def catalog(self, refresh: bool = False) -> Catalog: ...

    async def probe(self) -> dict[str, Any]: ...

    async def checkpoints(self) -> list[str]: ...

    def watch(self, prompt_id: str) -> Watch: ...

    def unwatch(self, prompt_id: str) -> None: ...

    async def upload(self, filename: str, data: bytes, content_type: str) -> str: ...

    async def submit(self, prompt_id: str, workflow: dict[str, Any], previews: bool) -> Submission: ...

    async def locate(self, prompt_id: str) -> tuple[str, int | None, list[p.PromptEvent]]: ...

    async def view(self, file: p.OutputFile) -> tuple[bytes, str]: ...

    async def delete_queued(self, prompt_id: str) -> None: ...

    async def interrupt(self, prompt_id: str) -> None: ...

    async def find_workflow(self, prompt_id: str) -> dict[str, Any] | None: ...


class DrainFlags(Protocol):
    """The drain flag of each backend, shared by every replica where a shared store is configured."""

    async def get_all(self) -> dict[str, str]: ...

    async def set(self, backend_id: str, reason: str) -> None: ...

    async def clear(self, backend_id: str) -> None: ...
