"""POST /prompt validation answers against capture 03 (and the prompt_id rules of capture 07)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.contract.inference.harness import RuntimeClient, capture, is_type

CASES = [
    e
    for e in capture("03_post_prompt_validation_errors.json")["events"]
    if e["dir"] == "http" and e["method"] == "POST" and e["path"] == "/prompt"
]


def normalised(body: Any) -> Any:
    """Drop what legitimately differs: tracebacks (our own frames), prompt ids, counters, output order."""
    body = copy.deepcopy(body)
    body.pop("prompt_id", None)
    body.pop("number", None)
    for entry in body.get("node_errors", {}).values():
        entry["dependent_outputs"] = sorted(entry["dependent_outputs"])
        for error in entry["errors"]:
            trace = error["extra_info"].get("traceback")
            if trace is not None:
                assert isinstance(trace, list)
                assert all(isinstance(line, str) for line in trace)
                error["extra_info"]["traceback"] = "<traceback>"
                # Which output's input reaches the broken link first depends on ComfyUI's set order.
                error["extra_info"].pop("input_config", None)
                error["extra_info"].pop("input_name", None)
    return body


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if "request_json" in c and c["request_json"] is not None],
    ids=lambda c: c["label"],
)
async def test_validation_answer_matches_capture_03(runtime: RuntimeClient, case: dict[str, Any]) -> None:
    request = case["request_json"]
    status, body = await runtime.post("/prompt", request)
    assert status == case["status"]
    assert normalised(body) == normalised(case["response_json"])


async def test_invalid_json_body_is_a_plain_text_500(runtime: RuntimeClient) -> None:
    async with runtime.session.post(runtime.base + "/prompt", data=b"{not json") as response:
        assert response.status == 500
        assert response.content_type == "text/plain"
        assert await response.text() == "500 Internal Server Error\n\nServer got itself in trouble"


async def test_array_body_and_list_prompt(runtime: RuntimeClient) -> None:
    status, body = await runtime.post("/prompt", [])
    assert (status, body["error"]["type"]) == (400, "no_prompt")
    status, _ = await runtime.post("/prompt", {"prompt": []})
    assert status == 500


async def test_invalid_branch_is_dropped_silently(runtime: RuntimeClient) -> None:
    case = next(c for c in CASES if c["label"] == "one_valid_and_one_invalid_output_branch")
    socket = await runtime.socket("partial-03")
    body = {**case["request_json"], "client_id": "partial-03"}
    status, answer = await runtime.post("/prompt", body)
    assert status == 200
    assert answer["node_errors"]["9"]["dependent_outputs"] == ["10"]
    run = await socket.until_done(answer["prompt_id"])
    assert sorted(m["data"]["node"] for m in run if is_type(m, "executed")) == ["4", "5"]
    _, history = await runtime.get(f"/history/{answer['prompt_id']}")
    assert history[answer["prompt_id"]]["prompt"][4] == ["4", "5"]


@pytest.mark.parametrize(
    "prompt_id",
    ["89BBB1EC-0452-4D52-A948-7FD2F80E686B", "my-job-1", "89bbb1ec04524d52a9487fd2f80e686b", 12345],
)
async def test_prompt_id_must_be_canonical_uuid(runtime: RuntimeClient, prompt_id: Any) -> None:
    recorded = next(
        e
        for e in capture("07_prompt_id_client_id_routing_extra_data.json")["events"]
        if e["dir"] == "http" and e.get("label") == "non-UUID prompt_id"
    )
    prompt = recorded["request_json"]["prompt"]
    status, body = await runtime.post("/prompt", {"prompt": prompt, "prompt_id": prompt_id})
    assert status == 400
    assert body == recorded["response_json"]


async def test_client_prompt_id_is_accepted_and_reusable(runtime: RuntimeClient) -> None:
    socket = await runtime.socket("own-id")
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 1}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "own"}},
    }
    own = "89bbb1ec-0452-4d52-a948-7fd2f80e686b"
    for _ in range(2):
        assert await runtime.submit(prompt, "own-id", prompt_id=own) == own
        await socket.until_done(own)
    _, history = await runtime.get("/history")
    assert list(history) == [own]


async def test_unimplemented_model_nodes_are_unknown_node_types(runtime: RuntimeClient) -> None:
    recorded = capture("19_checkpoint_validation_and_switch.json")
    _ = recorded  # the sampling nodes exist on a real server; here they must be refused as unknown
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}},
    }
    status, body = await runtime.post("/prompt", {"prompt": prompt})
    assert status == 400
    assert body == {
        "error": {
            "type": "missing_node_type",
            "message": "Node 'CheckpointLoaderSimple' not found. The custom node may not be installed.",
            "details": "Node ID '#4'",
            "extra_info": {
                "node_id": "4",
                "class_type": "CheckpointLoaderSimple",
                "node_title": "CheckpointLoaderSimple",
            },
        },
        "node_errors": {},
    }
