"""Presets: named, versioned ComfyUI workflows with typed parameters bound to node inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from servicekit import errors


class ParameterType(StrEnum):
    """The type of a preset parameter's value."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    IMAGE = "image"
    CHOICE = "choice"


Value = str | int | float | bool


@dataclass(frozen=True)
class Binding:
    """Where a parameter's value goes: one input of one node of the preset's workflow."""

    node_id: str
    input_name: str
    node_type: str = ""


@dataclass(frozen=True)
class Parameter:
    """One typed knob of a preset, with its default and bounds."""

    name: str
    type: ParameterType
    description: str
    bindings: tuple[Binding, ...]
    display_name: str = ""
    default: Value | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float = 0.0
    choices: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class Preset:
    """A named photo edit or generation recipe that clients run without writing a workflow."""

    name: str
    version: int
    display_name: str
    description: str
    parameters: tuple[Parameter, ...]
    required_inputs: tuple[str, ...]
    tags: tuple[str, ...]
    workflow: dict[str, object]
    preview_image: str = ""


def _parameter_error(name: str, message: str) -> errors.InvalidArgument:
    field = f'preset.parameters["{name}"]'
    return errors.InvalidArgument(
        f"parameter {name!r}: {message}",
        reason="PARAMETER_INVALID",
        violations=(errors.FieldViolation(field, message),),
    )


def _checked(parameter: Parameter, value: Value) -> Value:
    """`value` if it suits `parameter`'s type, range and choices; INVALID_ARGUMENT naming it otherwise."""
    kind = parameter.type
    if kind is ParameterType.IMAGE:
        raise _parameter_error(parameter.name, "is an image; bind it through inputs")
    expected: dict[ParameterType, tuple[type, ...]] = {
        ParameterType.STRING: (str,),
        ParameterType.CHOICE: (str,),
        ParameterType.BOOL: (bool,),
        ParameterType.INT: (int,),
        ParameterType.FLOAT: (int, float),
    }
    if (isinstance(value, bool) and kind is not ParameterType.BOOL) or not isinstance(value, expected[kind]):
        raise _parameter_error(parameter.name, f"expected a {kind.value} value, got {value!r}")
    if kind is ParameterType.CHOICE and value not in parameter.choices:
        raise _parameter_error(parameter.name, f"{value!r} is not one of {', '.join(parameter.choices)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if parameter.minimum is not None and value < parameter.minimum:
            raise _parameter_error(parameter.name, f"{value} is below the minimum {parameter.minimum}")
        if parameter.maximum is not None and value > parameter.maximum:
            raise _parameter_error(parameter.name, f"{value} is above the maximum {parameter.maximum}")
    return float(value) if kind is ParameterType.FLOAT else value


def resolve_parameters(preset: Preset, given: Mapping[str, Value]) -> dict[str, Value]:
    """Every non-image parameter's value, the given one checked or else its default."""
    known = {p.name: p for p in preset.parameters}
    for name in given:
        if name not in known:
            raise _parameter_error(name, f"the preset {preset.name} has no such parameter")
    resolved: dict[str, Value] = {}
    for parameter in preset.parameters:
        if parameter.type is ParameterType.IMAGE:
            if parameter.name in given:
                _checked(parameter, given[parameter.name])
            continue
        if parameter.name in given:
            resolved[parameter.name] = _checked(parameter, given[parameter.name])
        elif parameter.default is not None:
            resolved[parameter.name] = parameter.default
        elif parameter.required:
            raise _parameter_error(parameter.name, "is required")
    return resolved


def image_bindings(preset: Preset) -> dict[str, tuple[Binding, ...]]:
    """The nodes each image input of the preset feeds, by input name."""
    images = {p.name: p.bindings for p in preset.parameters if p.type is ParameterType.IMAGE}
    for name in preset.required_inputs:
        images.setdefault(name, ())
    return images
