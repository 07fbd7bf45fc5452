"""The events of one execution, as the service streams them: plain values, no protocol details."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class FailureReason(enum.Enum):
    """Why an execution failed; mirrors the contract's FailureReason."""

    NODE_EXCEPTION = "NODE_EXCEPTION"
    WORKFLOW_REJECTED = "WORKFLOW_REJECTED"
    INPUT_UNAVAILABLE = "INPUT_UNAVAILABLE"
    OUTPUT_STORAGE_FAILED = "OUTPUT_STORAGE_FAILED"
    BACKEND_LOST = "BACKEND_LOST"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    INTERNAL = "INTERNAL"


RETRYABLE = frozenset(
    {
        FailureReason.INPUT_UNAVAILABLE,
        FailureReason.OUTPUT_STORAGE_FAILED,
        FailureReason.BACKEND_LOST,
        FailureReason.OUT_OF_MEMORY,
        FailureReason.INTERNAL,
    }
)


class CancelReason(enum.Enum):
    """Why an execution stopped before finishing."""

    REQUESTED = "REQUESTED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERRUPTED = "INTERRUPTED"


@dataclass(frozen=True)
class Artifact:
    """One stored output image."""

    storage_key: str
    uri: str
    content_type: str
    size_bytes: int
    sha256: str
    width: int
    height: int
    node_id: str
    filename: str
    temporary: bool = False


@dataclass(frozen=True)
class Timing:
    """When an execution was submitted, started and ended."""

    submit_time: datetime | None
    start_time: datetime | None
    end_time: datetime


@dataclass(frozen=True)
class Accepted:
    """The execution is on a backend."""

    backend: str
    prompt_id: str
    attached: bool = False


@dataclass(frozen=True)
class Queued:
    """The execution waits at `position` (1-based) in the backend's pending queue."""

    position: int


@dataclass(frozen=True)
class Started:
    """The backend started the prompt; `cached_node_ids` will not execute."""

    cached_node_ids: tuple[str, ...]
    nodes_to_run: int


@dataclass(frozen=True)
class NodeStarted:
    """A node started executing."""

    node_id: str
    node_type: str
    node_title: str
    fraction: float


@dataclass(frozen=True)
class Progress:
    """A node reported step progress."""

    node_id: str
    value: int
    max: int
    fraction: float


@dataclass(frozen=True)
class Preview:
    """A live preview image of a running node."""

    node_id: str
    mime_type: str
    image: bytes = field(repr=False)


@dataclass(frozen=True)
class Output:
    """An output node finished and its images are stored."""

    node_id: str
    artifacts: tuple[Artifact, ...]


@dataclass(frozen=True)
class Succeeded:
    """Terminal: every output is stored."""

    artifacts: tuple[Artifact, ...]
    timing: Timing


@dataclass(frozen=True)
class Failed:
    """Terminal: the execution failed."""

    reason: FailureReason
    message: str
    timing: Timing
    node_id: str = ""
    node_type: str = ""
    exception_type: str = ""
    traceback: str = ""

    @property
    def retryable(self) -> bool:
        """Whether a new attempt may succeed because the cause was transient."""
        return self.reason in RETRYABLE


@dataclass(frozen=True)
class Cancelled:
    """Terminal: removed from the queue or interrupted."""

    reason: CancelReason
    timing: Timing
    node_id: str = ""
    node_type: str = ""


Event = (
    Accepted | Queued | Started | NodeStarted | Progress | Preview | Output | Succeeded | Failed | Cancelled
)
Terminal = Succeeded | Failed | Cancelled
TERMINAL_TYPES = (Succeeded, Failed, Cancelled)

MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_LINES = 20
MAX_TRACEBACK_BYTES = 4096


def trim_message(message: str) -> str:
    """A failure message cut to the contract's 2,000 characters."""
    message = message.strip()
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"


def trim_traceback(frames: list[str]) -> str:
    """The last frames of a traceback, at most 20 lines and 4 KiB, newest last."""
    lines = [line.strip() for line in frames if line.strip()][-MAX_TRACEBACK_LINES:]
    text = "\n".join(lines)
    while len(text.encode()) > MAX_TRACEBACK_BYTES and lines:
        lines = lines[1:]
        text = "\n".join(lines)
    return text
