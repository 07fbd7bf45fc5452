"""Presets: named, versioned ComfyUI workflows with typed parameters bound to node inputs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
