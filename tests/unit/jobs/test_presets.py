from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.adapters.preset_files import PresetDirectory, PresetFileError
from jobs.domain.presets import ParameterType, Preset
from jobs.service.presets import PresetService
from servicekit import errors

WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "input.png"}},
    "2": {
        "class_type": "ImageSharpen",
        "inputs": {"image": ["1", 0], "sharpen_radius": 1, "sigma": 1.0, "alpha": 0.5},
    },
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "out"}},
}


def write_preset(root: Path, name: str, *, bind_input: str = "alpha", version: int = 1) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    manifest = {
        "name": name,
        "version": version,
        "display_name": name.title(),
        "description": f"{name} edit",
        "required_inputs": ["image"],
        "tags": ["photo"],
        "parameters": [
            {
                "name": "strength",
                "type": "float",
                "description": "How strong.",
                "default": 0.5,
                "min": 0,
                "max": 1,
                "step": 0.05,
                "bind": [{"node": "2", "input": bind_input}],
            }
        ],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "workflow.json").write_text(json.dumps(WORKFLOW))
    return folder


def test_presets_are_read_from_their_folders_with_typed_parameters(tmp_path: Path) -> None:
    write_preset(tmp_path, "sharpen")
    (preset,) = PresetDirectory(tmp_path).all()
    assert preset.name == "sharpen"
    assert preset.parameters[0].type is ParameterType.FLOAT
    assert preset.parameters[0].bindings[0].node_id == "2"
    assert preset.workflow["3"]["class_type"] == "SaveImage"  # type: ignore[index]


def test_a_binding_to_an_input_the_workflow_lacks_stops_loading(tmp_path: Path) -> None:
    write_preset(tmp_path, "broken", bind_input="radius")
    with pytest.raises(PresetFileError, match="binds node 2 input 'radius'"):
        PresetDirectory(tmp_path)


def test_a_manifest_missing_a_field_is_named(tmp_path: Path) -> None:
    folder = write_preset(tmp_path, "incomplete")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["parameters"][0]["type"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PresetFileError, match=r"parameters\[0\]: missing field 'type'"):
        PresetDirectory(tmp_path)


class InMemoryCatalog:
    def __init__(self, *names: str) -> None:
        self.presets = tuple(
            Preset(
                name=n,
                version=2,
                display_name=n,
                description="",
                parameters=(),
                required_inputs=(),
                tags=(),
                workflow={},
            )
            for n in sorted(names)
        )

    def all(self) -> tuple[Preset, ...]:
        return self.presets


def test_unknown_preset_is_not_found_with_its_reason() -> None:
    with pytest.raises(errors.NotFound) as raised:
        PresetService(InMemoryCatalog("a")).get("nope")
    assert raised.value.reason == "PRESET_NOT_FOUND"
    assert raised.value.metadata == {"preset": "nope"}


def test_a_version_that_does_not_exist_is_not_found() -> None:
    service = PresetService(InMemoryCatalog("a"))
    assert service.get("a", 2).version == 2
    with pytest.raises(errors.NotFound) as raised:
        service.get("a", 1)
    assert raised.value.reason == "PRESET_VERSION_NOT_FOUND"


def test_presets_are_listed_in_pages_by_name() -> None:
    service = PresetService(InMemoryCatalog("c", "a", "b"))
    first, token = service.list(2, "")
    second, last = service.list(2, token)
    assert [p.name for p in first + second] == ["a", "b", "c"]
    assert last == ""


def test_a_negative_page_size_names_the_field() -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        PresetService(InMemoryCatalog()).list(-1, "")
    assert raised.value.violations[0].field == "page_size"
