"""POST /prompt validation with ComfyUI's rules and error shapes (capture 03), including its quirks:
outputs that fail are dropped while valid ones still run, a link to a missing node surfaces as an
exception on the linking node, and inputs with a custom validator skip range and choice checks."""

from __future__ import annotations

import inspect
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from inference.runtime.files import DataDirs
from inference.runtime.nodes.base import REGISTRY, NodeDef

Error = dict[str, Any]
_CONVERTERS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"


@dataclass
class Outcome:
    ok: bool
    error: Error | None
    outputs: list[str]
    node_errors: dict[str, Any] = field(default_factory=dict)


def _missing_type(node_id: str, title: str | None, class_type: str | None, message: str) -> Outcome:
    error = {
        "type": "missing_node_type",
        "message": message,
        "details": f"Node ID '#{node_id}'",
        "extra_info": {"node_id": node_id, "class_type": class_type, "node_title": title},
    }
    return Outcome(False, error, [])


def validate_prompt(prompt: dict[str, Any], targets: list[str] | None, dirs: DataDirs) -> Outcome:
    outputs: list[str] = []
    for node_id, data in prompt.items():
        if "class_type" not in data:
            title = data.get("_meta", {}).get("title")
            name = title or f"ID #{node_id}"
            message = (
                f"Node '{name}' has no class_type. The workflow may be corrupted or a custom node is missing."
            )
            return _missing_type(node_id, title, None, message)
        definition = REGISTRY.get(data["class_type"])
        if definition is None:
            title = data.get("_meta", {}).get("title", data["class_type"])
            message = f"Node '{title}' not found. The custom node may not be installed."
            return _missing_type(node_id, title, data["class_type"], message)
        if definition.is_output and (targets is None or node_id in targets):
            outputs.append(node_id)
    if not outputs:
        error = {
            "type": "prompt_no_outputs",
            "message": "Prompt has no outputs",
            "details": "",
            "extra_info": {},
        }
        return Outcome(False, error, [])
    return _validate_outputs(prompt, outputs, dirs)


def _validate_outputs(prompt: dict[str, Any], outputs: list[str], dirs: DataDirs) -> Outcome:
    good: list[str] = []
    failures: list[tuple[str, list[Error]]] = []
    node_errors: dict[str, Any] = {}
    validated: dict[str, tuple[bool, list[Error]]] = {}
    checker = _Checker(prompt, dirs, validated)
    for output in outputs:
        try:
            valid, reasons = checker.validate(output, [])
        except Exception as ex:
            reasons = [
                _exception_error("exception_during_validation", "Exception when validating node", ex, {})
            ]
            valid = False
            validated[output] = (False, reasons)
        if valid:
            good.append(output)
            continue
        failures.append((output, reasons))
        # Like ComfyUI: every invalid node seen so far is blamed, even if it belongs to another output.
        for node_id, (node_valid, node_reasons) in validated.items():
            if not node_valid and node_reasons:
                entry = node_errors.setdefault(
                    node_id,
                    {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    },
                )
                entry["dependent_outputs"].append(output)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, errors in failures for e in errors)
        error = {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": details,
            "extra_info": {},
        }
        return Outcome(False, error, [], node_errors)
    return Outcome(True, None, good, node_errors)


def _exception_error(kind: str, message: str, ex: BaseException, extra: dict[str, Any]) -> Error:
    typ = type(ex)
    name = typ.__qualname__ if typ.__module__ == "builtins" else f"{typ.__module__}.{typ.__qualname__}"
    extra = {
        **extra,
        "exception_message": str(ex),
        "exception_type": name,
        "traceback": traceback.format_tb(sys.exc_info()[2]),
    }
    if kind == "exception_during_validation":
        extra.pop("exception_message")
    return {"type": kind, "message": message, "details": str(ex), "extra_info": extra}


def class_inputs(definition: NodeDef, live: dict[str, Any]) -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    """(name, category, type, options) of every required/optional input, dynamic combos expanded."""
    for category in ("required", "optional"):
        yield from _expand(definition.spec["input"].get(category, {}), category, live, "")


def _expand(
    inputs: dict[str, Any], category: str, live: dict[str, Any], prefix: str
) -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    for name, config in inputs.items():
        full = f"{prefix}{name}"
        kind, options = config[0], (config[1] if len(config) > 1 else {})
        if kind == DYNAMIC_COMBO:
            # Only a selected, known option makes the input exist (ComfyUI's v3 schema finalisation).
            chosen = next((o for o in options.get("options", []) if o["key"] == live.get(full)), None)
            if chosen is not None:
                for sub_category, sub_inputs in chosen["inputs"].items():
                    yield from _expand(sub_inputs, sub_category, live, f"{full}.")
                yield full, category, kind, options
            continue
        yield full, category, kind, options


def types_compatible(received: Any, expected: Any) -> bool:
    if isinstance(expected, list):
        return received in ("COMBO", "STRING") or isinstance(received, list)
    if received == expected or "*" in (received, expected):
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    return set(received.split(",")).issubset(set(expected.split(",")))


class _Checker:
    def __init__(
        self, prompt: dict[str, Any], dirs: DataDirs, validated: dict[str, tuple[bool, list[Error]]]
    ) -> None:
        self.prompt = prompt
        self.dirs = dirs
        self.validated = validated

    def validate(self, node_id: str, visiting: list[str]) -> tuple[bool, list[Error]]:
        if node_id in self.validated:
            return self.validated[node_id]
        if node_id in visiting:
            return self._cycle(node_id, visiting)
        inputs = self.prompt[node_id]["inputs"]
        definition = REGISTRY[self.prompt[node_id]["class_type"]]
        custom = _custom_inputs(definition)
        errors: list[Error] = []
        valid = True
        for name, category, kind, options in class_inputs(definition, inputs):
            info = [kind, options]
            if name not in inputs:
                if category == "required":
                    errors.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": name,
                            "extra_info": {"input_name": name},
                        }
                    )
                continue
            value = inputs[name]
            if isinstance(value, list):
                link_ok = self._check_link(node_id, name, value, kind, info, errors, visiting)
                valid = valid and link_ok
                continue
            error = self._check_value(inputs, name, kind, options, info, custom)
            if error is not None:
                errors.append(error)
        errors += self._custom_validation(definition, inputs, custom)
        previous_ok, previous = self.validated.get(node_id, (True, []))
        result = (previous_ok and valid and not errors, previous + [e for e in errors if e not in previous])
        self.validated[node_id] = result
        return result

    def _cycle(self, node_id: str, visiting: list[str]) -> tuple[bool, list[Error]]:
        path = [*visiting[visiting.index(node_id) :], node_id]
        members = list(dict.fromkeys(path))
        details = " -> ".join(f"{n} ({self.prompt[n]['class_type']})" for n in path)
        for member in members:
            self.validated[member] = (
                False,
                [
                    {
                        "type": "dependency_cycle",
                        "message": "Dependency cycle detected",
                        "details": details,
                        "extra_info": {"node_id": member, "cycle_nodes": members},
                    }
                ],
            )
        return self.validated[node_id]

    def _check_link(
        self,
        node_id: str,
        name: str,
        value: list[Any],
        kind: Any,
        info: list[Any],
        errors: list[Error],
        visiting: list[str],
    ) -> bool:
        if len(value) != 2:
            errors.append(
                {
                    "type": "bad_linked_input",
                    "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    "details": name,
                    "extra_info": {"input_name": name, "input_config": info, "received_value": value},
                }
            )
            return True
        source_id = value[0]
        # These lookups fail for missing nodes or slots; the failure surfaces on whoever validates this node.
        source_type = REGISTRY[self.prompt[source_id]["class_type"]].return_types[value[1]]
        if not types_compatible(source_type, kind):
            errors.append(
                {
                    "type": "return_type_mismatch",
                    "message": "Return type mismatch between linked nodes",
                    "details": f"{name}, received_type({source_type}) mismatch input_type({kind})",
                    "extra_info": {
                        "input_name": name,
                        "input_config": info,
                        "received_type": source_type,
                        "linked_node": value,
                    },
                }
            )
            return True
        try:
            visiting.append(node_id)
            try:
                upstream_ok, _ = self.validate(source_id, visiting)
            finally:
                visiting.pop()
            return upstream_ok
        except Exception as ex:
            reasons = [
                _exception_error(
                    "exception_during_inner_validation",
                    "Exception when validating inner node",
                    ex,
                    {"input_name": name, "input_config": info, "linked_node": value},
                )
            ]
            self.validated[source_id] = (False, reasons)
            return False

    def _check_value(
        self,
        inputs: dict[str, Any],
        name: str,
        kind: Any,
        options: dict[str, Any],
        info: list[Any],
        custom: list[str],
    ) -> Error | None:
        value = inputs[name]
        try:
            if isinstance(value, dict) and "__value__" in value:
                value = inputs[name] = value["__value__"]
            if isinstance(kind, str) and kind in _CONVERTERS:
                value = inputs[name] = _CONVERTERS[kind](value)
        except Exception as ex:
            return {
                "type": "invalid_input_type",
                "message": f"Failed to convert an input value to a {kind} value",
                "details": f"{name}, {value}, {ex}",
                "extra_info": {
                    "input_name": name,
                    "input_config": info,
                    "received_value": value,
                    "exception_message": str(ex),
                },
            }
        if name in custom:
            return None
        return _range_or_choice_error(name, value, kind, options, info)

    def _custom_validation(
        self, definition: NodeDef, inputs: dict[str, Any], custom: list[str]
    ) -> list[Error]:
        if definition.validate is None:
            return []
        arguments = {
            name: inputs[name] for name in custom if name in inputs and not isinstance(inputs[name], list)
        }
        if len(arguments) != len(custom):
            return []
        result = definition.validate(self.dirs, **arguments)
        if result is True:
            return []
        errors = []
        for name in arguments:
            details = name if result is False else f"{name} - {result}"
            errors.append(
                {
                    "type": "custom_validation_failed",
                    "message": "Custom validation failed for node",
                    "details": details,
                    "extra_info": {"input_name": name},
                }
            )
        return errors


def _custom_inputs(definition: NodeDef) -> list[str]:
    if definition.validate is None:
        return []
    params = list(inspect.signature(definition.validate).parameters.values())[1:]
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _range_or_choice_error(
    name: str, value: Any, kind: Any, options: dict[str, Any], info: list[Any]
) -> Error | None:
    if "min" in options and value < options["min"]:
        return {
            "type": "value_smaller_than_min",
            "message": f"Value {value} smaller than min of {options['min']}",
            "details": name,
            "extra_info": {"input_name": name, "input_config": info, "received_value": value},
        }
    if "max" in options and value > options["max"]:
        return {
            "type": "value_bigger_than_max",
            "message": f"Value {value} bigger than max of {options['max']}",
            "details": name,
            "extra_info": {"input_name": name, "input_config": info, "received_value": value},
        }
    if not (isinstance(kind, list) or kind == "COMBO"):
        return None
    choices = options.get("options", []) if kind == "COMBO" else kind
    if options.get("multiselect") and isinstance(value, list):
        invalid = [v for v in value if v not in choices]
    else:
        invalid = [value] if value not in choices else []
    if not invalid:
        return None
    config: Any = info
    listing = str(choices)
    if len(choices) > 20:
        listing, config = f"(list of length {len(choices)})", None
    return {
        "type": "value_not_in_list",
        "message": "Value not in list",
        "details": f"{name}: {', '.join(repr(v) for v in invalid)} not in {listing}",
        "extra_info": {"input_name": name, "input_config": config, "received_value": value},
    }
