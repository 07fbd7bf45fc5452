"""API-format ComfyUI workflows as the jobs context sees them: parsed, summarized and bound to inputs.

The graph is checked against a backend's node catalog by the inference context; here only the shape is
checked (a JSON object of nodes with `class_type` and `inputs`), so a malformed or UI-format workflow is
refused before anything is reserved or queued.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servicekit import errors

MAX_WORKFLOW_BYTES = 1024 * 1024
LOAD_IMAGE_INPUT = "image"

Workflow = dict[str, dict[str, Any]]


def _invalid(
    message: str, field: str = "workflow_json", reason: str = "WORKFLOW_INVALID"
) -> errors.InvalidArgument:
    return errors.InvalidArgument(message, reason=reason, violations=(errors.FieldViolation(field, message),))


def node_field(node_id: str, input_name: str = "") -> str:
    """The BadRequest field path of a node or one of its inputs."""
    path = f'workflow_json["{node_id}"]'
    return f"{path}.inputs.{input_name}" if input_name else path


def parse(text: str) -> Workflow:
    """The workflow of `text`, or INVALID_ARGUMENT naming what is wrong with it."""
    if len(text.encode()) > MAX_WORKFLOW_BYTES:
        raise _invalid(f"the workflow is larger than {MAX_WORKFLOW_BYTES} bytes", reason="WORKFLOW_TOO_LARGE")
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise _invalid(f"the workflow is not valid JSON: {exc}") from None
    if isinstance(raw, dict) and isinstance(raw.get("nodes"), list) and "links" in raw:
        raise _invalid(
            "this is a UI-format workflow (the editor's Save); export it with 'Save (API Format)' and "
            "send that instead"
        )
    if not isinstance(raw, dict) or not raw:
        raise _invalid("the workflow must be a non-empty JSON object keyed by node id")
    violations = []
    for node_id, node in raw.items():
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("class_type"), str)
            or not node["class_type"]
        ):
            violations.append(
                errors.FieldViolation(node_field(node_id), "each node needs a string class_type")
            )
        elif not isinstance(node.get("inputs", {}), dict):
            violations.append(errors.FieldViolation(node_field(node_id), "inputs must be a JSON object"))
    if violations:
        raise errors.InvalidArgument(
            f"the workflow has {len(violations)} malformed node(s)",
            reason="WORKFLOW_INVALID",
            violations=tuple(violations),
        )
    return raw


def sha256(text: str) -> str:
    """The lower-case hex SHA-256 of the workflow text as submitted."""
    return hashlib.sha256(text.encode()).hexdigest()


def node_types(workflow: Workflow) -> tuple[str, ...]:
    """The distinct node classes used, sorted."""
    return tuple(sorted({node["class_type"] for node in workflow.values()}))


@dataclass(frozen=True)
class Binding:
    """An input image bound to a workflow: the file name a LoadImage node reads, and where it is stored."""

    filename: str
    storage_key: str


def extension(storage_key: str) -> str:
    """The file extension of a stored image, `.png` when it has none."""
    return posixpath.splitext(storage_key)[1].lower() or ".png"


def bind_inputs(workflow: Workflow, inputs: Sequence[tuple[str, str, str]]) -> tuple[Workflow, list[Binding]]:
    """Points LoadImage nodes at the job's inputs, given as (name, node_id, storage_key) triples.

    An input with a node id replaces that node's image; one without is matched by the file name the
    workflow's LoadImage nodes already name. Returns the bound copy and the files to supply.
    """
    bound = json.loads(json.dumps(workflow))
    readers: dict[str, list[str]] = {}
    for node_id, node in bound.items():
        image = node.get("inputs", {}).get(LOAD_IMAGE_INPUT)
        if isinstance(image, str):
            readers.setdefault(image, []).append(node_id)
    bindings = []
    for index, (name, node_id, storage_key) in enumerate(inputs):
        if node_id:
            node = bound.get(node_id)
            if node is None or not isinstance(node.get("inputs", {}).get(LOAD_IMAGE_INPUT), str):
                raise _invalid(
                    f"node {node_id!r} is not a node of the workflow with an image input",
                    field=f"inputs[{index}].node_id",
                    reason="INPUT_INVALID",
                )
            filename = f"input_{index}{extension(storage_key)}"
            node["inputs"][LOAD_IMAGE_INPUT] = filename
        elif name in readers:
            filename = name
        else:
            raise _invalid(
                f"no LoadImage node of the workflow reads {name!r}",
                field=f"inputs[{index}].name",
                reason="INPUT_INVALID",
            )
        bindings.append(Binding(filename, storage_key))
    return bound, bindings


def set_input(workflow: Workflow, node_id: str, input_name: str, value: object) -> None:
    """Sets one node input in place (the node must exist; presets are checked when loaded)."""
    workflow[node_id]["inputs"][input_name] = value


def dumps(workflow: Mapping[str, Any]) -> str:
    """The workflow as compact JSON text, the form stored and sent to inference."""
    return json.dumps(workflow, separators=(",", ":"))
