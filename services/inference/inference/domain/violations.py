"""Problems found in a workflow, each located at a node and input."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from servicekit.errors import FieldViolation, InvalidArgument


class ViolationReason(enum.Enum):
    """The kind of problem; mirrors the contract's WorkflowViolationReason."""

    INVALID_JSON = "INVALID_JSON"
    UI_FORMAT_WORKFLOW = "UI_FORMAT_WORKFLOW"
    MISSING_CLASS_TYPE = "MISSING_CLASS_TYPE"
    UNKNOWN_NODE_TYPE = "UNKNOWN_NODE_TYPE"
    MISSING_REQUIRED_INPUT = "MISSING_REQUIRED_INPUT"
    WRONG_TYPE = "WRONG_TYPE"
    LINK_TO_MISSING_NODE = "LINK_TO_MISSING_NODE"
    BAD_OUTPUT_INDEX = "BAD_OUTPUT_INDEX"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    VALUE_OUT_OF_RANGE = "VALUE_OUT_OF_RANGE"
    VALUE_NOT_IN_CHOICES = "VALUE_NOT_IN_CHOICES"
    CYCLE = "CYCLE"
    NO_OUTPUT_NODE = "NO_OUTPUT_NODE"
    MISSING_MODEL = "MISSING_MODEL"
    INPUT_FILE_MISSING = "INPUT_FILE_MISSING"
    PATH_NOT_ALLOWED = "PATH_NOT_ALLOWED"
    UNKNOWN_INPUT = "UNKNOWN_INPUT"
    TOO_LARGE = "TOO_LARGE"


class Severity(enum.Enum):
    """Whether a violation stops the workflow from running."""

    ERROR = "ERROR"
    WARNING = "WARNING"


@dataclass(frozen=True)
class Violation:
    """One problem in a workflow."""

    reason: ViolationReason
    message: str
    node_id: str = ""
    node_type: str = ""
    input_name: str = ""
    severity: Severity = Severity.ERROR

    @property
    def field(self) -> str:
        """The BadRequest-style path: `workflow_json["3"].inputs.seed`, shorter when less is known."""
        path = "workflow_json"
        if self.node_id:
            path += f'["{self.node_id}"]'
            if self.input_name:
                path += f".inputs.{self.input_name}"
        return path

    @property
    def is_error(self) -> bool:
        """Whether the violation makes the workflow invalid."""
        return self.severity is Severity.ERROR


def _natural(key: str) -> tuple[tuple[int, object], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", key) if part)


def ordered(violations: Iterable[Violation]) -> list[Violation]:
    """Errors first, then by node id (numeric ids in numeric order) and input name."""
    return sorted(
        violations,
        key=lambda v: (not v.is_error, _natural(v.node_id), v.input_name, v.reason.value, v.message),
    )


def invalid_workflow(violations: Iterable[Violation]) -> InvalidArgument:
    """The INVALID_ARGUMENT error Execute raises for a workflow with errors."""
    errors = [v for v in ordered(violations) if v.is_error]
    first = errors[0]
    summary = f"the workflow is invalid: {first.message}"
    if len(errors) > 1:
        summary += f" (and {len(errors) - 1} more)"
    return InvalidArgument(
        summary,
        reason="WORKFLOW_INVALID",
        metadata={"violations": str(len(errors)), "first_reason": first.reason.value},
        violations=tuple(FieldViolation(v.field, f"{v.reason.value}: {v.message}") for v in errors),
    )
