"""API-format ComfyUI workflows: parsing, and validation against a node catalog before anything is queued."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inference.domain.catalog import (
    CHECKPOINT_INPUTS,
    MODEL_INPUTS,
    Catalog,
    InputSpec,
    NodeSpec,
    types_compatible,
)
from inference.domain.violations import Severity, Violation, ViolationReason

MAX_WORKFLOW_BYTES = 1024 * 1024
MAX_NODES = 5000
R = ViolationReason


@dataclass(frozen=True)
class Link:
    """An input fed by output `index` of node `node_id`."""

    node_id: str
    index: int


@dataclass(frozen=True)
class Node:
    """One node of an API-format workflow."""

    node_id: str
    class_type: str
    inputs: Mapping[str, Any]
    title: str = ""

    def links(self) -> Iterable[tuple[str, Link]]:
        """The inputs of this node that are well-formed links."""
        for name, value in self.inputs.items():
            link = as_link(value)
            if link is not None:
                yield name, link


@dataclass(frozen=True)
class Workflow:
    """A parsed API-format workflow; `raw` is the JSON object as given."""

    nodes: Mapping[str, Node]
    raw: Mapping[str, Any] = field(repr=False)

    def checkpoints(self) -> list[str]:
        """The checkpoint files the workflow loads, sorted, for checkpoint affinity."""
        names = {
            value
            for node in self.nodes.values()
            for key, value in node.inputs.items()
            if key in CHECKPOINT_INPUTS and isinstance(value, str)
        }
        return sorted(names)


def as_link(value: Any) -> Link | None:
    """The link `value` stands for when it is a `[node_id, output_index]` pair, else None."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    ):
        return Link(value[0], value[1])
    return None


def parse(text: str) -> tuple[Workflow | None, list[Violation]]:
    """Parses workflow JSON text; returns the workflow, or None with the violations that prevent parsing."""
    size = len(text.encode())
    if size > MAX_WORKFLOW_BYTES:
        return None, [
            Violation(R.TOO_LARGE, f"the workflow is {size} bytes; at most {MAX_WORKFLOW_BYTES} allowed")
        ]
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return None, [Violation(R.INVALID_JSON, f"the workflow is not valid JSON: {exc}")]
    if not isinstance(raw, dict):
        return None, [
            Violation(R.INVALID_JSON, "the workflow must be a JSON object of nodes keyed by node id")
        ]
    if isinstance(raw.get("nodes"), list) and "links" in raw:
        return None, [
            Violation(
                R.UI_FORMAT_WORKFLOW,
                "this is a ComfyUI editor (UI-format) workflow with 'nodes' and 'links' arrays; export it "
                "with 'Save (API Format)' and send that instead",
            )
        ]
    if not raw:
        return None, [Violation(R.NO_OUTPUT_NODE, "the workflow has no nodes")]
    if len(raw) > MAX_NODES:
        return None, [
            Violation(R.TOO_LARGE, f"the workflow has {len(raw)} nodes; at most {MAX_NODES} allowed")
        ]
    return _nodes(raw)


def _nodes(raw: dict[str, Any]) -> tuple[Workflow | None, list[Violation]]:
    nodes: dict[str, Node] = {}
    problems: list[Violation] = []
    for node_id, body in raw.items():
        if not isinstance(body, dict):
            problems.append(Violation(R.INVALID_JSON, f"node {node_id} is not a JSON object", node_id))
            continue
        inputs = body.get("inputs", {})
        meta = body.get("_meta")
        title = str(meta.get("title") or "") if isinstance(meta, dict) else ""
        class_type = body.get("class_type")
        if not isinstance(inputs, dict):
            problems.append(
                Violation(R.INVALID_JSON, f"node {node_id}: 'inputs' must be a JSON object", node_id)
            )
            inputs = {}
        if not isinstance(class_type, str) or not class_type:
            named = f" ({title!r})" if title else ""
            problems.append(
                Violation(R.MISSING_CLASS_TYPE, f"node {node_id}{named} has no class_type", node_id)
            )
            class_type = ""
        nodes[node_id] = Node(node_id, class_type, inputs, title)
    return Workflow(nodes, raw), problems


@dataclass(frozen=True)
class Report:
    """The result of validating a workflow."""

    violations: list[Violation]
    output_node_ids: list[str]
    checkpoints: list[str]

    @property
    def valid(self) -> bool:
        """Whether nothing stops the workflow from running."""
        return not any(v.is_error for v in self.violations)


def validate(workflow: Workflow, catalog: Catalog, input_filenames: Iterable[str] = ()) -> Report:
    """Every problem of `workflow` against `catalog`, as ComfyUI would find it and more precisely located."""
    files = frozenset(input_filenames)
    problems: list[Violation] = []
    outputs: list[str] = []
    for node in workflow.nodes.values():
        if not node.class_type:
            continue
        spec = catalog.get(node.class_type)
        if spec is None:
            problems.append(
                Violation(
                    R.UNKNOWN_NODE_TYPE,
                    f"node {node.node_id}: node type {node.class_type!r} is not offered by the backend",
                    node.node_id,
                    node.class_type,
                )
            )
            continue
        if spec.output_node:
            outputs.append(node.node_id)
        problems.extend(_check_node(workflow, catalog, node, spec, files))
    problems.extend(_cycles(workflow))
    if not outputs and not any(v.reason is R.UNKNOWN_NODE_TYPE for v in problems):
        problems.append(Violation(R.NO_OUTPUT_NODE, "the workflow has no output node (such as SaveImage)"))
    return Report(problems, sorted(outputs, key=_sort_key), workflow.checkpoints())


def _sort_key(node_id: str) -> tuple[int, int | str]:
    return (0, int(node_id)) if node_id.isdigit() else (1, node_id)


def _check_node(
    workflow: Workflow, catalog: Catalog, node: Node, spec: NodeSpec, files: frozenset[str]
) -> list[Violation]:
    problems: list[Violation] = []
    for declared in spec.inputs:
        if declared.required and declared.name not in node.inputs:
            problems.append(
                _at(
                    node,
                    declared.name,
                    R.MISSING_REQUIRED_INPUT,
                    "required input is missing (no value or link)",
                )
            )
    hidden = catalog.hidden.get(spec.class_type, frozenset())
    for name, value in node.inputs.items():
        input_spec = spec.input(name)
        if input_spec is None:
            if name not in hidden:
                problems.append(
                    _at(
                        node,
                        name,
                        R.UNKNOWN_INPUT,
                        f"{spec.class_type} has no input {name!r}; it is ignored",
                        severity=Severity.WARNING,
                    )
                )
            continue
        if isinstance(value, list):
            problems.extend(_check_link(workflow, catalog, node, input_spec, value))
        else:
            problems.extend(_check_value(node, input_spec, value, files))
    return problems


def _at(
    node: Node, name: str, reason: ViolationReason, message: str, severity: Severity = Severity.ERROR
) -> Violation:
    return Violation(reason, f"{name}: {message}", node.node_id, node.class_type, name, severity)


def _check_link(
    workflow: Workflow, catalog: Catalog, node: Node, spec: InputSpec, value: list[Any]
) -> list[Violation]:
    link = as_link(value)
    if link is None:
        return [_at(node, spec.name, R.BAD_OUTPUT_INDEX, f"{value!r} is not a [node_id, output_index] link")]
    source = workflow.nodes.get(link.node_id)
    if source is None:
        return [
            _at(
                node,
                spec.name,
                R.LINK_TO_MISSING_NODE,
                f"links to node {link.node_id!r}, which does not exist",
            )
        ]
    source_spec = catalog.get(source.class_type)
    if source_spec is None:
        return []
    if not 0 <= link.index < len(source_spec.outputs):
        return [
            _at(
                node,
                spec.name,
                R.BAD_OUTPUT_INDEX,
                f"links to output {link.index} of node {link.node_id} ({source.class_type}), which has "
                f"{len(source_spec.outputs)} output(s)",
            )
        ]
    output_type = source_spec.outputs[link.index].type
    if not types_compatible(output_type, spec.type):
        return [
            _at(
                node,
                spec.name,
                R.TYPE_MISMATCH,
                f"expects {spec.type} but is linked to output {link.index} of node {link.node_id} "
                f"({source.class_type}), which is {output_type}",
            )
        ]
    return []


def _check_value(node: Node, spec: InputSpec, value: Any, files: frozenset[str]) -> list[Violation]:
    if spec.is_link_type:
        return [
            _at(
                node,
                spec.name,
                R.WRONG_TYPE,
                f"expects a link to a {spec.type} output, got the value {value!r}",
            )
        ]
    if spec.is_upload:
        return _check_upload(node, spec, value, files)
    if spec.choices is not None:
        if str(value) in spec.choices and not isinstance(value, (dict, bool)):
            return []
        reason = R.MISSING_MODEL if spec.name in MODEL_INPUTS else R.VALUE_NOT_IN_CHOICES
        return [_at(node, spec.name, reason, f"{value!r} is not one of {_choices(spec.choices)}")]
    if spec.type in ("INT", "FLOAT"):
        return _check_number(node, spec, value)
    if spec.type == "BOOLEAN" and not isinstance(value, bool):
        return [_at(node, spec.name, R.WRONG_TYPE, f"expects true or false, got {value!r}")]
    if spec.type == "STRING":
        if isinstance(value, (dict, bool)) or value is None:
            return [_at(node, spec.name, R.WRONG_TYPE, f"expects a string, got {value!r}")]
        if spec.name == "filename_prefix" and _escapes(str(value)):
            return [_at(node, spec.name, R.PATH_NOT_ALLOWED, f"{value!r} escapes the output directory")]
    return []


def _choices(choices: tuple[str, ...]) -> str:
    if len(choices) > 12:
        return f"the {len(choices)} allowed values (e.g. {', '.join(map(repr, choices[:5]))})"
    return "[" + ", ".join(map(repr, choices)) + "]"


def _escapes(path: str) -> bool:
    parts = path.replace("\\", "/").split("/")
    return path.startswith(("/", "\\")) or ".." in parts or (len(path) > 1 and path[1] == ":")


def _check_upload(node: Node, spec: InputSpec, value: Any, files: frozenset[str]) -> list[Violation]:
    if not isinstance(value, str) or not value:
        return [_at(node, spec.name, R.WRONG_TYPE, f"expects an input file name, got {value!r}")]
    if _escapes(value):
        return [_at(node, spec.name, R.PATH_NOT_ALLOWED, f"{value!r} is not a plain relative file name")]
    if value in files or (spec.choices is not None and value in spec.choices):
        return []
    supplied = ", ".join(sorted(map(repr, files))) or "none"
    return [
        _at(node, spec.name, R.INPUT_FILE_MISSING, f"{value!r} is not among the supplied inputs ({supplied})")
    ]


def _number(value: Any, kind: str) -> float | None:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) or kind == "FLOAT" else None


def _check_number(node: Node, spec: InputSpec, value: Any) -> list[Violation]:
    number = _number(value, spec.type)
    if number is None:
        return [_at(node, spec.name, R.WRONG_TYPE, f"expects {spec.type}, got {value!r}")]
    low, high = spec.options.get("min"), spec.options.get("max")
    shown = int(number) if spec.type == "INT" and number.is_integer() else number
    if isinstance(low, (int, float)) and number < low:
        return [_at(node, spec.name, R.VALUE_OUT_OF_RANGE, f"{shown} is below the minimum {low}")]
    if isinstance(high, (int, float)) and number > high:
        return [_at(node, spec.name, R.VALUE_OUT_OF_RANGE, f"{shown} is above the maximum {high}")]
    return []


def _cycles(workflow: Workflow) -> list[Violation]:
    """One CYCLE violation per cycle of links, on its lowest node id."""
    graph = {
        node_id: [link.node_id for _, link in node.links() if link.node_id in workflow.nodes]
        for node_id, node in workflow.nodes.items()
    }
    state: dict[str, int] = {}
    found: list[Violation] = []
    seen_cycles: set[frozenset[str]] = set()
    for start in graph:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node_id, index = stack.pop()
            if index == 0:
                state[node_id] = 1
                path.append(node_id)
            targets = graph[node_id]
            if index < len(targets):
                stack.append((node_id, index + 1))
                target = targets[index]
                if state.get(target) == 1:
                    cycle = path[path.index(target) :]
                    if frozenset(cycle) not in seen_cycles:
                        seen_cycles.add(frozenset(cycle))
                        found.append(_cycle_violation(workflow, cycle))
                elif not state.get(target):
                    stack.append((target, 0))
            else:
                state[node_id] = 2
                path.pop()
    return found


def _cycle_violation(workflow: Workflow, cycle: list[str]) -> Violation:
    first = min(cycle, key=_sort_key)
    node = workflow.nodes[first]
    chain = " -> ".join(f"{n} ({workflow.nodes[n].class_type})" for n in [*cycle, cycle[0]])
    return Violation(R.CYCLE, f"the links form a cycle: {chain}", first, node.class_type)
