"""What a backend reports about one prompt, independent of the wire protocol that carried it.

The ComfyUI adapter turns WebSocket frames and /history entries into these; the execution use case turns
them into the events the contract streams.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

# The namespace of the UUIDv5 prompt ids derived from execution ids; fixed forever, so every replica (and
# every version of the service) derives the same prompt id from the same execution id.
PROMPT_NAMESPACE = uuid.UUID("4f0c6a43-5a8e-5c0b-9d53-3b8c1f7e2a10")


def prompt_id_for(execution_id: str) -> str:
    """The lower-case canonical UUID ComfyUI will use for `execution_id`."""
    return str(uuid.uuid5(PROMPT_NAMESPACE, execution_id))


@dataclass(frozen=True)
class OutputFile:
    """A file an output node wrote on the backend."""

    filename: str
    subfolder: str
    type: str


@dataclass(frozen=True)
class PromptQueued:
    """The prompt waits at `position` (1-based) among the backend's pending prompts."""

    position: int


@dataclass(frozen=True)
class PromptStarted:
    """The backend started the prompt."""

    cached_node_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeExecuting:
    """A node began executing."""

    node_id: str


@dataclass(frozen=True)
class NodeProgress:
    """A node reported step progress."""

    node_id: str
    value: int
    max: int


@dataclass(frozen=True)
class PreviewImage:
    """A preview image; `node_id` is empty when the frame did not say which node sent it."""

    node_id: str
    mime_type: str
    image: bytes = field(repr=False)


@dataclass(frozen=True)
class NodeText:
    """Progress text a node wants shown (binary TEXT frames)."""

    node_id: str
    text: str


@dataclass(frozen=True)
class NodeOutput:
    """An output node finished with these files."""

    node_id: str
    files: tuple[OutputFile, ...]


@dataclass(frozen=True)
class PromptSucceeded:
    """The prompt finished successfully."""


@dataclass(frozen=True)
class PromptFailed:
    """A node raised while the prompt ran."""

    node_id: str
    node_type: str
    exception_type: str
    message: str
    traceback: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptInterrupted:
    """The prompt was interrupted while running."""

    node_id: str = ""
    node_type: str = ""


@dataclass(frozen=True)
class PromptRemoved:
    """The prompt left the pending queue without running (deleted by us or by someone else)."""


@dataclass(frozen=True)
class PromptLost:
    """The backend no longer knows the prompt (it restarted) or stayed unreachable past the grace period."""

    message: str


PromptEvent = (
    PromptQueued
    | PromptStarted
    | NodeExecuting
    | NodeProgress
    | PreviewImage
    | NodeText
    | NodeOutput
    | PromptSucceeded
    | PromptFailed
    | PromptInterrupted
    | PromptRemoved
    | PromptLost
)
FINAL_PROMPT_EVENTS = (PromptSucceeded, PromptFailed, PromptInterrupted, PromptRemoved, PromptLost)
