"""The node catalog of a backend: what ComfyUI's /object_info says each node class accepts and returns.

Both of ComfyUI's spellings of input specs are normalised here: legacy (`["IMAGE"]`, combos as
`[[choices...], {...}]`) and the newer one (`["IMAGE", {}]`, combos as `["COMBO", {"options": [...]}]`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

COMBO = "COMBO"
PRIMITIVES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", COMBO})
# Inputs that name model files: a value missing from their choices means a model the backend lacks.
MODEL_INPUTS = frozenset(
    {
        "ckpt_name",
        "lora_name",
        "vae_name",
        "unet_name",
        "clip_name",
        "clip_name1",
        "clip_name2",
        "control_net_name",
        "upscale_model_name",
        "model_name",
        "style_model_name",
        "gligen_name",
    }
)
CHECKPOINT_INPUTS = frozenset({"ckpt_name", "unet_name"})


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a node class."""

    name: str
    type: str
    required: bool
    choices: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_link_type(self) -> bool:
        """Whether values of this input can only come through a link (IMAGE, MODEL, …)."""
        if self.type in PRIMITIVES or self.type.startswith("COMFY_") or self.choices is not None:
            return False
        # Widget-like custom types (COLOR, BOUNDING_BOX) carry a default or are socketless.
        return "default" not in self.options and not self.options.get("socketless")

    @property
    def is_upload(self) -> bool:
        """Whether the input names an uploaded input file (LoadImage's image)."""
        return bool(self.options.get("image_upload"))

    @property
    def tooltip(self) -> str:
        """The input's tooltip, or an empty string."""
        return str(self.options.get("tooltip") or "")


@dataclass(frozen=True)
class OutputSpec:
    """One output of a node class, in link-index order."""

    type: str
    name: str
    is_list: bool = False


@dataclass(frozen=True)
class NodeSpec:
    """One node class of the catalog."""

    class_type: str
    display_name: str
    category: str
    description: str
    output_node: bool
    deprecated: bool
    experimental: bool
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]

    def input(self, name: str) -> InputSpec | None:
        """The declared input called `name`, if any."""
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None


@dataclass(frozen=True)
class Catalog:
    """The node classes of one backend (or the union of several)."""

    nodes: Mapping[str, NodeSpec]
    hidden: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def get(self, class_type: str) -> NodeSpec | None:
        """The spec of `class_type`, if the catalog offers it."""
        return self.nodes.get(class_type)

    def __len__(self) -> int:
        return len(self.nodes)


def _parse_input(name: str, raw: Any, required: bool) -> InputSpec:
    head = raw[0] if isinstance(raw, list) and raw else raw
    options = raw[1] if isinstance(raw, list) and len(raw) > 1 and isinstance(raw[1], dict) else {}
    if isinstance(head, list):
        return InputSpec(name, COMBO, required, tuple(str(c) for c in head), options)
    kind = str(head)
    if kind == COMBO:
        choices = options.get("options")
        return InputSpec(name, COMBO, required, tuple(str(c) for c in choices or ()), options)
    return InputSpec(name, kind, required, None, options)


def parse_node(class_type: str, raw: Mapping[str, Any]) -> tuple[NodeSpec, frozenset[str]]:
    """One /object_info entry as a NodeSpec, with the names of its hidden inputs."""
    groups = raw.get("input") or {}
    order = raw.get("input_order") or {}
    inputs: list[InputSpec] = []
    for group, required in (("required", True), ("optional", False)):
        specs = groups.get(group) or {}
        names = [n for n in order.get(group) or () if n in specs] + [
            n for n in specs if n not in (order.get(group) or ())
        ]
        inputs.extend(_parse_input(n, specs[n], required) for n in names)
    types = list(raw.get("output") or ())
    names = list(raw.get("output_name") or types)
    is_list = list(raw.get("output_is_list") or [False] * len(types))
    outputs = tuple(
        OutputSpec(
            type=str(t) if not isinstance(t, list) else COMBO,
            name=str(names[i] if i < len(names) else t),
            is_list=bool(is_list[i] if i < len(is_list) else False),
        )
        for i, t in enumerate(types)
    )
    spec = NodeSpec(
        class_type=class_type,
        display_name=str(raw.get("display_name") or class_type),
        category=str(raw.get("category") or ""),
        description=str(raw.get("description") or ""),
        output_node=bool(raw.get("output_node")),
        deprecated=bool(raw.get("deprecated")),
        experimental=bool(raw.get("experimental")),
        inputs=tuple(inputs),
        outputs=outputs,
    )
    return spec, frozenset((groups.get("hidden") or {}).keys())


def parse_catalog(object_info: Mapping[str, Any]) -> Catalog:
    """The catalog described by a whole /object_info document."""
    nodes: dict[str, NodeSpec] = {}
    hidden: dict[str, frozenset[str]] = {}
    for class_type, raw in object_info.items():
        if isinstance(raw, dict):
            nodes[class_type], hidden[class_type] = parse_node(class_type, raw)
    return Catalog(nodes, hidden)


def _merge_spec(a: NodeSpec, b: NodeSpec) -> NodeSpec:
    merged = []
    for spec in a.inputs:
        other = b.input(spec.name)
        if spec.choices is not None and other is not None and other.choices is not None:
            union = tuple(dict.fromkeys((*spec.choices, *other.choices)))
            spec = replace(spec, choices=union)
        merged.append(spec)
    return replace(a, inputs=tuple(merged))


def merge_catalogs(catalogs: Iterable[Catalog]) -> Catalog:
    """The union of several catalogs: a class or a choice offered by any of them is accepted."""
    nodes: dict[str, NodeSpec] = {}
    hidden: dict[str, frozenset[str]] = {}
    for catalog in catalogs:
        for class_type, spec in catalog.nodes.items():
            nodes[class_type] = _merge_spec(nodes[class_type], spec) if class_type in nodes else spec
            hidden[class_type] = hidden.get(class_type, frozenset()) | catalog.hidden.get(
                class_type, frozenset()
            )
    return Catalog(nodes, hidden)


def types_compatible(output_type: str, input_type: str) -> bool:
    """Whether an output of `output_type` may feed an input of `input_type` (ComfyUI's matching rules)."""
    if (
        "*" in (output_type, input_type)
        or output_type.startswith("COMFY_")
        or input_type.startswith("COMFY_")
    ):
        return True
    if input_type == COMBO or output_type == COMBO:
        return True
    return bool(set(output_type.split(",")) & set(input_type.split(",")))
