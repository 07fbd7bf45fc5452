"""An execution request and the checks it must pass before anything reaches a backend."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime

from servicekit.errors import FieldViolation, InvalidArgument

EXECUTION_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,200}$")
PREFIX_PART = re.compile(r"^[A-Za-z0-9._=@+-]{1,200}$")
MAX_INPUTS = 16
MAX_PREVIEWS_PER_SECOND = 10.0


@dataclass(frozen=True)
class InputFile:
    """An input image: the name LoadImage uses and the object-store key it comes from."""

    filename: str
    storage_key: str


@dataclass(frozen=True)
class ExecutionRequest:
    """What a caller asks Execute to run.

    `new_execution` is the caller's promise that no Execute with this id was sent before, so no backend can
    hold a prompt of it; it changes how the execution starts, not which execution it is.
    """

    execution_id: str
    workflow_json: str
    output_prefix: str
    inputs: tuple[InputFile, ...] = ()
    checkpoint_hint: str = ""
    backend_id: str = ""
    previews: bool = False
    previews_per_second: float = 0.0
    include_temp_outputs: bool = False
    deadline: datetime | None = None
    new_execution: bool = False

    @property
    def preview_interval(self) -> float:
        """Seconds between two preview events: 0 means 1 per second, above 10 per second means 10."""
        rate = self.previews_per_second if self.previews_per_second > 0 else 1.0
        return 1.0 / min(rate, MAX_PREVIEWS_PER_SECOND)

    def fingerprint(self) -> str:
        """What makes two requests with one execution id the same execution."""
        body = {
            "workflow": self.workflow_json,
            "inputs": [[i.filename, i.storage_key] for i in self.inputs],
            "output_prefix": self.output_prefix,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _bad(field: str, message: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {message}", reason=reason, violations=(FieldViolation(field, message),))


def check_execution_id(execution_id: str, field: str = "execution_id") -> None:
    """INVALID_ARGUMENT reason EXECUTION_ID_INVALID unless 1 to 200 characters of [A-Za-z0-9._:/-]."""
    if not EXECUTION_ID.match(execution_id):
        raise _bad(field, "must be 1 to 200 characters of [A-Za-z0-9._:/-]", "EXECUTION_ID_INVALID")


def _relative_path(value: str) -> bool:
    parts = value.split("/")
    return (
        bool(value)
        and not value.startswith("/")
        and "\\" not in value
        and all(p and p != ".." for p in parts)
    )


def check_request(request: ExecutionRequest) -> None:
    """The request-level checks of Execute (the workflow itself is validated against a catalog later)."""
    check_execution_id(request.execution_id)
    prefix = request.output_prefix
    if not prefix or not all(PREFIX_PART.match(part) and part != ".." for part in prefix.split("/")):
        raise _bad(
            "output_prefix",
            "required: an object-store key prefix such as outputs/u1/job1/1, without a trailing '/' or '..'",
            "OUTPUT_PREFIX_INVALID",
        )
    if len(request.inputs) > MAX_INPUTS:
        raise _bad("inputs", f"at most {MAX_INPUTS} input files are allowed", "INPUT_FILENAME_INVALID")
    seen: set[str] = set()
    for index, item in enumerate(request.inputs):
        if not _relative_path(item.filename) or len(item.filename) > 255:
            raise _bad(
                f"inputs[{index}].filename",
                f"{item.filename!r} must be a relative file name without '..' segments or a leading '/'",
                "INPUT_FILENAME_INVALID",
            )
        if item.filename in seen:
            raise _bad(
                f"inputs[{index}].filename", f"{item.filename!r} is given twice", "INPUT_FILENAME_INVALID"
            )
        seen.add(item.filename)
        if not _relative_path(item.storage_key):
            raise _bad(f"inputs[{index}].storage_key", "must be an object-store key", "INPUT_KEY_INVALID")
