"""HTTP endpoints against captures 08 (history, view, upload) and 09 (misc, /api prefix), /object_info
against captures 00/00b, and the command line (`--port 0` prints the real port)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from inference.runtime.nodes.base import REGISTRY
from tests.contract.inference.harness import RuntimeClient, capture, pattern_png, shape
from tests.contract.inference.test_runtime_queue import tiny

CORE = capture("00_object_info_core_image_nodes.json")
CATEGORIES = capture("00b_object_info_image_categories.json")


def recorded_spec(name: str) -> dict[str, Any]:
    return CORE[name] if name in CORE else CATEGORIES[name]


@pytest.mark.parametrize("name", sorted(REGISTRY))
async def test_object_info_equals_the_captured_spec(runtime: RuntimeClient, name: str) -> None:
    status, body = await runtime.get(f"/object_info/{name}")
    assert status == 200
    ours, theirs = body[name], recorded_spec(name)
    if name in ("LoadImage", "LoadImageMask"):
        assert ours["input"]["required"]["image"][0] == ["capture_input.png"]
        ours["input"]["required"]["image"][0] = theirs["input"]["required"]["image"][0]
    assert ours == theirs


async def test_object_info_lists_only_implemented_nodes(runtime: RuntimeClient) -> None:
    _, body = await runtime.get("/object_info")
    assert set(body) == set(REGISTRY)
    assert len(body) >= 45
    assert {
        "LoadImage",
        "SaveImage",
        "ImageBlend",
        "AdjustBrightness",
        "ColorTransfer",
        "ResizeAndPadImage",
    } <= set(body)
    assert "KSampler" not in body
    assert "CheckpointLoaderSimple" not in body
    assert (await runtime.get("/object_info/NoSuchNode")) == (200, {})


@pytest.mark.parametrize(
    "path",
    [
        "/prompt",
        "/queue",
        "/system_stats",
        "/features",
        "/history",
        "/embeddings",
        "/models",
        "/object_info/ImageInvert",
    ],
)
async def test_every_route_also_answers_under_api(runtime: RuntimeClient, path: str) -> None:
    plain, prefixed = await runtime.get(path), await runtime.get("/api" + path)
    assert plain[0] == prefixed[0] == 200
    assert shape(plain[1]) == shape(prefixed[1])


async def test_misc_endpoints_match_capture_09(runtime: RuntimeClient) -> None:
    recorded = {e["label"]: e for e in capture("09_misc_endpoints.json")["events"] if e["dir"] == "http"}
    for label in ("/features", "/embeddings", "/models", "/models/checkpoints", "/prompt", "/queue"):
        status, body = await runtime.get(label)
        assert (status, body) == (recorded[label]["status"], recorded[label]["response_json"]), label
    _, stats = await runtime.get("/system_stats")
    assert shape(stats) == shape(recorded["/system_stats"]["response_json"])
    assert stats["devices"][0]["type"] == "cpu"
    async with runtime.session.delete(runtime.base + "/prompt") as response:
        assert response.status == 405
    assert (await runtime.get("/history/abc")) == (200, {})
    assert (await runtime.get("/models/nope"))[0] == 404


async def test_view_rules_match_capture_08(runtime: RuntimeClient) -> None:
    socket = await runtime.socket("files")
    prompt = tiny(1, "x")
    prompt["2"]["inputs"]["filename_prefix"] = "capture/blend"
    await socket.until_done(await runtime.submit(prompt, "files"))
    expected = {
        e["path"]: e["status"]
        for e in capture("08_history_view_upload.json")["events"]
        if e["dir"] == "http" and e["path"].startswith("/view") and "kkxmd" not in e["path"]
    }
    for path, status in expected.items():
        assert (await runtime.get(path))[0] == status, path
    async with runtime.session.get(
        runtime.base + "/view?filename=blend_00001_.png&subfolder=capture&type=output&preview=webp;50"
    ) as response:
        assert response.content_type == "image/webp"
    async with runtime.session.get(
        runtime.base + "/view?filename=blend_00001_.png&subfolder=capture&type=output&preview=jpeg;80"
    ) as response:
        assert (await response.read())[:3] == b"\xff\xd8\xff"


async def test_upload_naming_matches_capture_08(runtime: RuntimeClient) -> None:
    first, second = pattern_png(32, 32), pattern_png(48, 32)
    assert (await runtime.upload("dup.png", first))[1] == {
        "name": "dup.png",
        "subfolder": "",
        "type": "input",
    }
    assert (await runtime.upload("dup.png", second))[1]["name"] == "dup (1).png"
    assert (await runtime.upload("dup.png", first))[1]["name"] == "dup.png"
    assert (await runtime.upload("dup.png", second, overwrite="true"))[1]["name"] == "dup.png"
    assert (await runtime.upload("sub.png", first, subfolder="team/sub"))[1] == {
        "name": "sub.png",
        "subfolder": "team/sub",
        "type": "input",
    }
    assert (await runtime.upload("tmp.png", first, type="temp"))[1]["type"] == "temp"
    assert (await runtime.post("/upload/image", raw=b""))[0] == 400
    socket = await runtime.socket("files")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "team/sub/sub.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    run = await socket.until_done(await runtime.submit(prompt, "files"))
    assert any(isinstance(m, dict) and m["type"] == "execution_success" for m in run)
    _, info = await runtime.get("/object_info/LoadImage")
    assert info["LoadImage"]["input"]["required"]["image"][0] == [
        "capture_input.png",
        "dup (1).png",
        "dup.png",
    ]


async def test_history_listing_delete_and_clear(runtime: RuntimeClient) -> None:
    socket = await runtime.socket("hist")
    ids = [await runtime.submit(tiny(i, "h"), "hist") for i in range(3)]
    for prompt_id in ids:
        await socket.until_done(prompt_id)
    assert list((await runtime.get("/history?max_items=2"))[1]) == ids[1:]
    assert list((await runtime.get("/history?max_items=2&offset=1"))[1]) == ids[1:3]
    assert list((await runtime.get("/history?max_items=1&offset=0"))[1]) == ids[:1]
    assert await runtime.post("/history", {"delete": [ids[0]]}) == (200, b"")
    assert (await runtime.get(f"/history/{ids[0]}"))[1] == {}
    assert await runtime.post("/history", {"clear": True}) == (200, b"")
    assert (await runtime.get("/history"))[1] == {}


async def test_loadimage_reruns_when_the_file_changes_and_free_drops_the_cache(
    runtime: RuntimeClient,
) -> None:
    socket = await runtime.socket("cache")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "probe.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }

    async def cached_nodes() -> list[str]:
        run = await socket.until_done(await runtime.submit(prompt, "cache"))
        return next(m for m in run if isinstance(m, dict) and m["type"] == "execution_cached")["data"][
            "nodes"
        ]

    await runtime.upload("probe.png", pattern_png(16, 16), overwrite="true")
    assert await cached_nodes() == []
    assert await cached_nodes() == ["1", "2"]
    await runtime.upload("probe.png", pattern_png(24, 16), overwrite="true")
    assert await cached_nodes() == []
    assert await runtime.post("/free", {"free_memory": True}) == (200, b"")
    assert await cached_nodes() == []


def _entries(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


async def test_command_line_prints_the_ready_line_with_the_real_port(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inference.runtime",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = json.loads(await asyncio.wait_for(process.stdout.readline(), 60))
        assert line["event"] == "runtime.ready"
        assert line["port"] > 0
        reader, writer = await asyncio.open_connection("127.0.0.1", line["port"])
        writer.write(b"GET /api/prompt HTTP/1.0\r\n\r\n")
        assert b'{"exec_info": {"queue_remaining": 0}}' in await reader.read()
        writer.close()
        assert _entries(tmp_path) == {"input", "output", "temp"}
    finally:
        process.terminate()
        await process.wait()
