"""Workflow validation against the node catalog ComfyUI 0.33.0 reported (recorded /object_info)."""

from __future__ import annotations

import json

import pytest

from inference.domain.catalog import merge_catalogs, parse_catalog
from inference.domain.violations import Severity, ViolationReason, invalid_workflow
from inference.domain.workflow import parse, validate
from tests.support.comfyui_replay import WORKFLOWS, object_info

CATALOG = parse_catalog(object_info())
R = ViolationReason


def violations(name: str, files: tuple[str, ...] = ("capture_input.png",)) -> list[tuple[str, str, str]]:
    workflow, problems = parse((WORKFLOWS / "invalid" / f"{name}.json").read_text())
    assert workflow is not None
    report = validate(workflow, CATALOG, files)
    return [(v.reason.value, v.node_id, v.input_name) for v in [*problems, *report.violations] if v.is_error]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad_combo_value", ("VALUE_NOT_IN_CHOICES", "2", "upscale_method")),
        ("ckpt_not_in_list", ("MISSING_MODEL", "4", "ckpt_name")),
        ("cycle_self_link", ("CYCLE", "2", "")),
        ("ksampler_model_linked_to_clip", ("TYPE_MISMATCH", "3", "model")),
        ("link_bad_output_index", ("BAD_OUTPUT_INDEX", "3", "image")),
        ("link_to_missing_node", ("LINK_TO_MISSING_NODE", "3", "image")),
        ("link_type_mismatch_mask_to_image", ("TYPE_MISMATCH", "3", "image")),
        ("missing_class_type", ("MISSING_CLASS_TYPE", "1", "")),
        ("missing_input_file", ("INPUT_FILE_MISSING", "1", "image")),
        ("missing_required_link", ("MISSING_REQUIRED_INPUT", "3", "image")),
        ("missing_required_widget", ("MISSING_REQUIRED_INPUT", "3", "sigma")),
        ("no_output_node", ("NO_OUTPUT_NODE", "", "")),
        ("sampler_not_in_list", ("VALUE_NOT_IN_CHOICES", "3", "sampler_name")),
        ("unknown_class_type", ("UNKNOWN_NODE_TYPE", "9", "")),
        ("value_above_max", ("VALUE_OUT_OF_RANGE", "2", "scale_by")),
        ("wrong_type_value", ("WRONG_TYPE", "2", "scale_by")),
    ],
)
def test_each_recorded_invalid_workflow_gets_exactly_its_violation(
    name: str, expected: tuple[str, str, str]
) -> None:
    assert violations(name) == [expected]


@pytest.mark.parametrize(
    "name",
    [
        "basic_load_scale_sharpen_save",
        "blend_invert_blur_preview",
        "timing_512_scale_sharpen",
        "txt2img_random_sd15",
        "txt2img_two_checkpoints",
        "slow_big_blur",
    ],
)
def test_the_recorded_valid_workflows_pass(name: str) -> None:
    workflow, problems = parse((WORKFLOWS / f"{name}.json").read_text())
    assert workflow is not None
    report = validate(workflow, CATALOG, ["capture_input.png", "capture_512.png"])
    assert not problems
    assert report.valid, report.violations


def test_checkpoints_are_read_from_loader_nodes() -> None:
    workflow, _ = parse((WORKFLOWS / "txt2img_two_checkpoints.json").read_text())
    assert workflow is not None
    assert workflow.checkpoints() == ["random_sd15.safetensors", "random_sd15_b.safetensors"]


def test_a_ui_format_workflow_is_rejected_with_a_clear_message() -> None:
    _, problems = parse(json.dumps({"nodes": [{"id": 1}], "links": [], "version": 0.4}))
    [problem] = problems
    assert problem.reason is R.UI_FORMAT_WORKFLOW
    assert "API Format" in problem.message


@pytest.mark.parametrize("text", ["{", "[]", '"x"', '{"1": 5}'])
def test_text_that_is_not_a_workflow_is_invalid_json(text: str) -> None:
    _, problems = parse(text)
    assert problems[0].reason is R.INVALID_JSON


def test_a_workflow_over_one_mebibyte_is_too_large() -> None:
    _, problems = parse(json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"pad": "x" * (1 << 20)}}}))
    assert problems[0].reason is R.TOO_LARGE


def test_a_longer_cycle_is_reported_once_on_its_lowest_node() -> None:
    graph = {
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["3", 0]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    workflow, _ = parse(json.dumps(graph))
    assert workflow is not None
    cycles = [v for v in validate(workflow, CATALOG).violations if v.reason is R.CYCLE]
    assert [(v.node_id, v.node_type) for v in cycles] == [("1", "ImageInvert")]


def test_an_undeclared_input_is_only_a_warning_and_a_path_escape_is_an_error() -> None:
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0, "x": 1},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "../../etc/x"}},
    }
    workflow, _ = parse(json.dumps(graph))
    assert workflow is not None
    found = {(v.reason, v.severity, v.node_id) for v in validate(workflow, CATALOG).violations}
    assert found == {(R.UNKNOWN_INPUT, Severity.WARNING, "1"), (R.PATH_NOT_ALLOWED, Severity.ERROR, "2")}


def test_the_pool_catalog_accepts_a_choice_any_backend_offers() -> None:
    other = json.loads(json.dumps(object_info()))
    other["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["no_such_model.safetensors"]
    merged = merge_catalogs([CATALOG, parse_catalog(other)])
    workflow, _ = parse((WORKFLOWS / "invalid" / "ckpt_not_in_list.json").read_text())
    assert workflow is not None
    assert validate(workflow, merged).valid


def test_invalid_argument_lists_errors_first_as_bad_request_fields() -> None:
    workflow, _ = parse((WORKFLOWS / "invalid" / "missing_required_widget.json").read_text())
    assert workflow is not None
    error = invalid_workflow(validate(workflow, CATALOG, ["capture_input.png"]).violations)
    assert error.reason == "WORKFLOW_INVALID"
    assert [v.field for v in error.violations] == ['workflow_json["3"].inputs.sigma']
