"""The preset catalog on disk: one folder per preset with `manifest.json` and `workflow.json`.

Presets are versioned files of the jobs context, reviewed like code. They are read once at start;
a malformed manifest stops the service with a message naming the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobs.domain.presets import Binding, Parameter, ParameterType, Preset

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "presets"


class PresetFileError(Exception):
    """A preset folder is malformed; the message names the file and what is wrong."""


def _parameter(raw: dict[str, Any], where: str) -> Parameter:
    try:
        kind = ParameterType(raw["type"])
        bindings = tuple(
            Binding(node_id=str(b["node"]), input_name=str(b["input"]), node_type=str(b.get("node_type", "")))
            for b in raw["bind"]
        )
        return Parameter(
            name=str(raw["name"]),
            type=kind,
            description=str(raw["description"]),
            bindings=bindings,
            display_name=str(raw.get("display_name", raw["name"])),
            default=raw.get("default"),
            minimum=raw.get("min"),
            maximum=raw.get("max"),
            step=float(raw.get("step", 0.0)),
            choices=tuple(map(str, raw.get("choices", ()))),
            required=bool(raw.get("required", False)),
        )
    except KeyError as exc:
        raise PresetFileError(f"{where}: missing field {exc.args[0]!r}") from None
    except ValueError as exc:
        raise PresetFileError(f"{where}: {exc}") from None


def load_preset(folder: Path) -> Preset:
    """Reads one preset folder and checks that every binding points at a node input of its workflow."""
    manifest_path, workflow_path = folder / "manifest.json", folder / "workflow.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        workflow = json.loads(workflow_path.read_text())
    except (OSError, ValueError) as exc:
        raise PresetFileError(f"{folder}: {exc}") from None
    parameters = tuple(
        _parameter(raw, f"{manifest_path} parameters[{i}]")
        for i, raw in enumerate(manifest.get("parameters", []))
    )
    for parameter in parameters:
        for binding in parameter.bindings:
            node = workflow.get(binding.node_id)
            if not isinstance(node, dict) or binding.input_name not in node.get("inputs", {}):
                raise PresetFileError(
                    f"{manifest_path}: parameter {parameter.name!r} binds node {binding.node_id} input "
                    f"{binding.input_name!r}, which {workflow_path.name} does not have"
                )
    try:
        return Preset(
            name=str(manifest["name"]),
            version=int(manifest["version"]),
            display_name=str(manifest["display_name"]),
            description=str(manifest["description"]),
            parameters=parameters,
            required_inputs=tuple(manifest.get("required_inputs", ())),
            tags=tuple(manifest.get("tags", ())),
            workflow=workflow,
            preview_image=str(manifest.get("preview_image", "")),
        )
    except KeyError as exc:
        raise PresetFileError(f"{manifest_path}: missing field {exc.args[0]!r}") from None


def load_preview(folder: Path, preset: Preset) -> bytes | None:
    """The preview image the manifest names, read from the preset's folder; None when it names none."""
    if not preset.preview_image:
        return None
    path = folder / preset.preview_image
    if path.parent != folder:
        raise PresetFileError(f"{folder}: preview_image must be a file name inside the preset folder")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PresetFileError(f"{folder}: preview image: {exc}") from None


class PresetDirectory:
    """Every preset under one folder, with its preview image, loaded once."""

    def __init__(self, root: Path) -> None:
        folders = sorted(p for p in root.iterdir() if (p / "manifest.json").exists()) if root.is_dir() else []
        loaded = [(load_preset(f), f) for f in folders]
        self._presets = tuple(sorted((p for p, _ in loaded), key=lambda p: p.name))
        self._previews = {(p.name, p.version): load_preview(f, p) for p, f in loaded}

    def preview(self, name: str, version: int) -> bytes | None:
        """The preview image of a preset version, or None when it has none."""
        return self._previews.get((name, version))

    def all(self) -> tuple[Preset, ...]:
        """Every preset, sorted by name."""
        return self._presets
