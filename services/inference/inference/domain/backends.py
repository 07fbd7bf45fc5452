"""Backends as the scheduler sees them: health, drain flag, load, checkpoint affinity."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from servicekit import errors

NAME_PATTERN = re.compile(r"^backends/([A-Za-z0-9][A-Za-z0-9._-]{0,62})$")
# A backend whose last workflow used another checkpoint counts as this much busier (in queued prompts):
# a switch costs seconds (1.6 to 9.6 s measured), a queued job usually more.
AFFINITY_PENALTY = 0.5


class Health(enum.Enum):
    """The latest health of a backend."""

    STARTING = "STARTING"
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNREACHABLE = "UNREACHABLE"


class Kind(enum.Enum):
    """What kind of server a backend is."""

    COMFYUI = "COMFYUI"
    LOCAL_RUNTIME = "LOCAL_RUNTIME"


@dataclass(frozen=True)
class Device:
    """A compute device of a backend."""

    name: str
    type: str
    index: int
    vram_total: int
    vram_free: int


@dataclass
class BackendState:
    """Everything the pool knows about one backend."""

    backend_id: str
    url: str
    kind: Kind
    create_time: datetime
    health: Health = Health.STARTING
    health_message: str = "no probe answered yet"
    draining: bool = False
    drain_reason: str = ""
    queue_depth: int = 0
    running_prompt_id: str = ""
    running_execution_id: str = ""
    last_checkpoint: str = ""
    checkpoints: tuple[str, ...] = ()
    comfyui_version: str = ""
    pytorch_version: str = ""
    devices: tuple[Device, ...] = ()
    ram_total: int = 0
    ram_free: int = 0
    node_type_count: int = 0
    last_seen_time: datetime | None = None
    update_time: datetime | None = None
    in_flight: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The resource name, "backends/{id}"."""
        return f"backends/{self.backend_id}"

    @property
    def schedulable(self) -> bool:
        """Whether new work may go to this backend."""
        return self.health is Health.HEALTHY and not self.draining


def backend_id_from_name(name: str) -> str:
    """The id in "backends/{id}"; INVALID_ARGUMENT naming the field otherwise."""
    match = NAME_PATTERN.match(name)
    if match is None:
        raise errors.InvalidArgument(
            f"{name!r} is not a backend name of the form backends/{{backend_id}}",
            reason="BACKEND_NAME_INVALID",
            violations=(errors.FieldViolation("name", "expected backends/{backend_id}"),),
        )
    return match.group(1)


def load(state: BackendState) -> int:
    """Prompts ahead of a new one: ours in flight, or the backend's whole queue if others use it too."""
    busy = state.queue_depth + (1 if state.running_prompt_id else 0)
    return max(len(state.in_flight), busy)


def choose(candidates: Sequence[BackendState], checkpoints: Sequence[str], limit: int) -> BackendState | None:
    """The least-loaded schedulable backend with room for one more of ours, preferring checkpoint affinity."""

    def score(state: BackendState) -> tuple[float, str]:
        mismatch = bool(checkpoints) and state.last_checkpoint not in checkpoints
        return load(state) + (AFFINITY_PENALTY if mismatch else 0.0), state.backend_id

    open_ = [s for s in candidates if s.schedulable and len(s.in_flight) < limit]
    return min(open_, key=score) if open_ else None
