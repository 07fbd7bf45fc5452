"""Conversion of presets between domain values and their protos."""

from __future__ import annotations

from comfyapi.jobs.v1 import preset_pb2
from jobs.domain.presets import Parameter, ParameterType, Preset, Value

_TYPES = {
    ParameterType.STRING: preset_pb2.PARAMETER_TYPE_STRING,
    ParameterType.INT: preset_pb2.PARAMETER_TYPE_INT,
    ParameterType.FLOAT: preset_pb2.PARAMETER_TYPE_FLOAT,
    ParameterType.BOOL: preset_pb2.PARAMETER_TYPE_BOOL,
    ParameterType.IMAGE: preset_pb2.PARAMETER_TYPE_IMAGE,
    ParameterType.CHOICE: preset_pb2.PARAMETER_TYPE_CHOICE,
}
PREFIX = "presets/"


def value_to_proto(value: Value | None) -> preset_pb2.ParameterValue | None:
    """A typed parameter value; bool is tested before int because bool is an int in Python."""
    if value is None:
        return None
    if isinstance(value, bool):
        return preset_pb2.ParameterValue(bool_value=value)
    if isinstance(value, int):
        return preset_pb2.ParameterValue(int_value=value)
    if isinstance(value, float):
        return preset_pb2.ParameterValue(float_value=value)
    return preset_pb2.ParameterValue(string_value=str(value))


def _bound(value: float | None, kind: ParameterType) -> preset_pb2.ParameterValue | None:
    if value is None:
        return None
    return value_to_proto(int(value) if kind is ParameterType.INT else float(value))


def parameter_to_proto(parameter: Parameter) -> preset_pb2.PresetParameter:
    """One parameter with its bindings."""
    return preset_pb2.PresetParameter(
        name=parameter.name,
        display_name=parameter.display_name,
        description=parameter.description,
        type=_TYPES[parameter.type],
        default_value=value_to_proto(parameter.default),
        min_value=_bound(parameter.minimum, parameter.type),
        max_value=_bound(parameter.maximum, parameter.type),
        step=parameter.step,
        choices=parameter.choices,
        required=parameter.required,
        bindings=[
            preset_pb2.NodeInputBinding(node_id=b.node_id, node_type=b.node_type, input_name=b.input_name)
            for b in parameter.bindings
        ],
    )


def preset_to_proto(preset: Preset) -> preset_pb2.Preset:
    """A preset as clients see it; the workflow itself stays inside the jobs context."""
    return preset_pb2.Preset(
        name=PREFIX + preset.name,
        version=preset.version,
        display_name=preset.display_name,
        description=preset.description,
        parameters=[parameter_to_proto(p) for p in preset.parameters],
        required_input_names=preset.required_inputs,
        preview_image_uri=preset.preview_image,
        tags=preset.tags,
    )
