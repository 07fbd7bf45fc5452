"""WebSocket sequences of the local runtime against the recorded ComfyUI transcripts (01, 02, 04, 05)."""

from __future__ import annotations

import json
from typing import Any

from tests.contract.inference.harness import RuntimeClient, capture, is_type, kinds, shape

SERVER_FLAGS = {
    "supports_preview_metadata": True,
    "supports_model_type_tags": True,
    "max_upload_size": 104857600,
    "extension": {"manager": {"supports_v4": True}},
    "node_replacements": True,
    "assets": False,
}


def captured_messages(name: str, socket: str = "A") -> list[Any]:
    return [
        e["message"]
        for e in capture(name)["events"]
        if e["dir"] == "ws-recv" and e.get("socket") == socket and e["kind"] == "text"
    ]


def first_http(name: str, label: str) -> dict[str, Any]:
    return next(e for e in capture(name)["events"] if e["dir"] == "http" and e.get("label") == label)


async def test_basic_prompt_sequence_matches_capture_01(runtime: RuntimeClient) -> None:
    recorded = capture("01_basic_prompt_ws_sequence.json")
    socket = await runtime.socket("client-01")
    body = first_http("01_basic_prompt_ws_sequence.json", "submit basic")["request_json"]
    prompt_id = await runtime.submit(body["prompt"], "client-01", extra_data=body["extra_data"])
    messages = [socket.received[0]]
    messages += await socket.until_done(prompt_id)

    assert kinds(messages) == recorded["ws_type_sequence"]
    for ours, theirs in zip(messages, captured_messages("01_basic_prompt_ws_sequence.json"), strict=True):
        assert shape(ours) == shape(theirs), ours["type"]
    assert messages[0]["data"]["sid"] == "client-01"
    executed = {m["data"]["node"]: m["data"]["output"] for m in messages if is_type(m, "executed")}
    assert executed["4"] == {
        "images": [{"filename": "basic_00001_.png", "subfolder": "capture", "type": "output"}]
    }
    assert executed["5"]["images"][0]["type"] == "temp"


async def test_history_and_view_of_a_finished_prompt_match_capture_01(runtime: RuntimeClient) -> None:
    socket = await runtime.socket("client-01")
    body = first_http("01_basic_prompt_ws_sequence.json", "submit basic")["request_json"]
    prompt_id = await runtime.submit(body["prompt"], "client-01", extra_data=body["extra_data"])
    await socket.until_done(prompt_id)

    status, history = await runtime.get(f"/history/{prompt_id}")
    recorded = first_http("01_basic_prompt_ws_sequence.json", "history of prompt")["response_json"]
    assert status == 200
    assert shape(history[prompt_id]) == shape(next(iter(recorded.values())))
    entry = history[prompt_id]
    assert entry["prompt"][4] == ["4", "5"]
    assert [m[0] for m in entry["status"]["messages"]] == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]
    assert entry["prompt"][3]["extra_pnginfo"] == body["extra_data"]["extra_pnginfo"]
    assert entry["meta"]["4"] == {
        "node_id": "4",
        "display_node": "4",
        "parent_node": None,
        "real_node_id": "4",
    }

    async with runtime.session.get(
        runtime.base + "/view?filename=basic_00001_.png&subfolder=capture&type=output"
    ) as r:
        data = await r.read()
        assert r.status == 200
        assert r.headers["Content-Type"] == "image/png"
        assert r.headers["Content-Disposition"] == 'filename="basic_00001_.png"'
        assert data[:8] == bytes.fromhex("89504e470d0a1a0a")


async def test_resubmits_are_cached_as_in_capture_02(runtime: RuntimeClient) -> None:
    recorded = capture("02_resubmit_identical_and_partial_cache.json")
    socket = await runtime.socket("client-02")
    body = first_http("01_basic_prompt_ws_sequence.json", "submit basic")["request_json"]
    first = await socket.until_done(await runtime.submit(body["prompt"], "client-02"))
    first_outputs = [m["data"]["output"] for m in first if is_type(m, "executed")]

    for label in ("identical_resubmit_1", "identical_resubmit_2"):
        run = await socket.until_done(await runtime.submit(body["prompt"], "client-02"))
        assert kinds(run) == recorded["ws_type_sequences"][label]
        cached = next(m for m in run if is_type(m, "execution_cached"))["data"]["nodes"]
        assert cached == ["1", "2", "3", "4", "5"]
        # A fully cached prompt re-sends the old file names and writes nothing new.
        assert [m["data"]["output"] for m in run if is_type(m, "executed")] == first_outputs

    changed = recorded["changed_workflow"]
    run = await socket.until_done(await runtime.submit(changed, "client-02"))
    assert kinds(run) == recorded["ws_type_sequences"]["changed_sharpen_alpha"]
    assert next(m for m in run if is_type(m, "execution_cached"))["data"]["nodes"] == ["1", "2"]
    saved = [m["data"]["output"]["images"][0]["filename"] for m in run if is_type(m, "executed")]
    assert saved[0] == "basic_00002_.png"


async def test_runtime_errors_match_capture_04(runtime: RuntimeClient) -> None:
    recorded = capture("04_execution_error.json")
    socket = await runtime.socket("client-04")
    mismatch = first_http("04_execution_error.json", "mask_batch_mismatch")["request_json"]["prompt"]
    run = await socket.until_done(await runtime.submit(mismatch, "client-04"))
    assert kinds(run) == recorded["ws_type_sequences"]["mask_batch_mismatch"]
    error = next(m for m in run if is_type(m, "execution_error"))["data"]
    theirs = next(m for m in captured_messages("04_execution_error.json") if m["type"] == "execution_error")[
        "data"
    ]
    assert shape(error) == shape(theirs)
    assert set(error["current_inputs"]) == set(theirs["current_inputs"])
    assert (error["node_id"], error["node_type"], error["exception_type"]) == (
        "4",
        "ImageCropToMask",
        "ValueError",
    )
    assert error["exception_message"] == theirs["exception_message"]
    assert sorted(error["executed"]) == sorted(theirs["executed"])
    _status, history = await runtime.get(f"/history/{error['prompt_id']}")
    entry = history[error["prompt_id"]]
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["completed"] is False
    assert (
        len(entry["outputs"]["6"]["images"]) == 3
    )  # output nodes that ran before the failure keep their files

    traversal = first_http("04_execution_error.json", "save_path_traversal")["request_json"]["prompt"]
    run = await socket.until_done(await runtime.submit(traversal, "client-04"))
    assert kinds(run) == recorded["ws_type_sequences"]["save_path_traversal"]
    error = next(m for m in run if is_type(m, "execution_error"))["data"]
    assert error["exception_type"] == "Exception"
    assert error["exception_message"].startswith(
        "**** ERROR: Saving image outside the output folder is not allowed."
    )
    assert set(error["current_inputs"]) == {"images", "filename_prefix", "prompt", "extra_pnginfo"}


async def test_binary_frames_match_capture_05(runtime: RuntimeClient) -> None:
    recorded = capture("05_binary_frames.json")["ws_type_sequences"]
    prompts = [
        e["request_json"]["prompt"]
        for e in capture("05_binary_frames.json")["events"]
        if e["dir"] == "http" and e["path"] == "/prompt"
    ]

    legacy = await runtime.socket("legacy-05")
    messages = [legacy.received[0]]
    messages += await legacy.until_done(await runtime.submit(prompts[0], "legacy-05"))
    assert kinds(messages) == recorded["legacy_no_feature_flags"]
    preview = next(m for m in messages if isinstance(m, bytes) and m[:4] == b"\0\0\0\1")
    assert preview[4:8] == b"\0\0\0\2"
    assert preview[8:16] == bytes.fromhex("89504e470d0a1a0a")
    text = next(m for m in messages if isinstance(m, bytes) and m[:4] == b"\0\0\0\3")
    assert text == b"\0\0\0\3\0\0\0\1" + b"4" + b"width: 160, height: 120\n batch size: 1"
    await legacy.ws.close()

    flags = await runtime.socket("flags-05")
    await flags.ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    messages = [flags.received[0], await flags.next()]
    assert messages[1] == {"type": "feature_flags", "data": SERVER_FLAGS}
    messages += await flags.until_done(await runtime.submit(prompts[1], "flags-05"))
    assert kinds(messages) == recorded["with_supports_preview_metadata"]
    frame = next(m for m in messages if isinstance(m, bytes) and m[:4] == b"\0\0\0\4")
    length = int.from_bytes(frame[4:8], "big")
    metadata = json.loads(frame[8 : 8 + length])
    assert set(metadata) == {
        "node_id",
        "prompt_id",
        "display_node_id",
        "parent_node_id",
        "real_node_id",
        "image_type",
    }
    assert metadata["image_type"] == "image/png"
    assert frame[8 + length : 16 + length] == bytes.fromhex("89504e470d0a1a0a")


async def test_feature_flags_sent_late_are_ignored(runtime: RuntimeClient) -> None:
    late = await runtime.socket("late-05")
    await late.ws.send_json({"type": "hello", "data": {}})
    await late.ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    assert await late.quiet(0.3) == []
    assert runtime.runtime.hub.supports_preview_metadata("late-05") is False
