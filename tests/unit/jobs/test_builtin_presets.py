"""The presets the jobs context ships: well-formed, and photo presets built only from model-free nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.adapters.preset_files import BUILTIN_DIR, PresetDirectory
from jobs.domain.presets import ParameterType, resolve_parameters

RUNTIME_SPECS = (
    Path(__file__).resolve().parents[3] / "services/inference/inference/runtime/specs/object_info.json"
)
PHOTO_PRESETS = ("cinematic", "portrait_pro", "product_glow")
PRESETS = {p.name: p for p in PresetDirectory(BUILTIN_DIR).all()}


def test_the_catalog_holds_the_three_photo_presets_and_txt2img() -> None:
    assert sorted(PRESETS) == ["cinematic", "portrait_pro", "product_glow", "txt2img"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_defaults_respect_their_own_ranges(name: str) -> None:
    for parameter in PRESETS[name].parameters:
        if parameter.default is None or parameter.type is ParameterType.IMAGE:
            continue
        if parameter.minimum is not None:
            assert parameter.default >= parameter.minimum, parameter.name  # type: ignore[operator]
        if parameter.maximum is not None:
            assert parameter.default <= parameter.maximum, parameter.name  # type: ignore[operator]


@pytest.mark.parametrize("name", PHOTO_PRESETS)
def test_photo_presets_use_only_nodes_the_local_runtime_executes(name: str) -> None:
    specs = json.loads(RUNTIME_SPECS.read_text())
    preset = PRESETS[name]
    assert {node["class_type"] for node in preset.workflow.values()} <= set(specs)  # type: ignore[index]
    assert preset.required_inputs == ("image",)
    assert (BUILTIN_DIR / name / preset.preview_image).is_file()


@pytest.mark.parametrize("name", PHOTO_PRESETS)
def test_bindings_land_on_inputs_whose_spec_admits_the_default(name: str) -> None:
    specs = json.loads(RUNTIME_SPECS.read_text())
    preset = PRESETS[name]
    for parameter in preset.parameters:
        for binding in parameter.bindings:
            node_type = preset.workflow[binding.node_id]["class_type"]  # type: ignore[index]
            kind, options = (specs[node_type]["input"]["required"][binding.input_name] + [{}])[:2]
            if parameter.type in (ParameterType.INT, ParameterType.FLOAT):
                assert kind == parameter.type.value.upper()
                assert (
                    options.get("min", float("-inf")) <= parameter.default <= options.get("max", float("inf"))
                )


def test_txt2img_needs_a_prompt() -> None:
    with pytest.raises(Exception, match="prompt"):
        resolve_parameters(PRESETS["txt2img"], {})
    resolved = resolve_parameters(PRESETS["txt2img"], {"prompt": "a lighthouse at dusk", "seed": 2**62})
    assert resolved["seed"] == 2**62
