"""Queue semantics against capture 06: heap-ordered (unsorted) pending list, front/number priorities,
delete and clear touching pending items only, interrupt touching only the running prompt."""

from __future__ import annotations

from typing import Any

from tests.contract.inference.harness import RuntimeClient, is_type, kinds


def slow(color: int, prefix: str) -> dict[str, Any]:
    """EmptyImage and three large blurs: long enough to queue behind and to interrupt at a node boundary."""
    prompt: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 1536, "height": 1536, "batch_size": 1, "color": color},
        }
    }
    for node in ("2", "3", "4"):
        prompt[node] = {
            "class_type": "ImageBlur",
            "inputs": {"image": [str(int(node) - 1), 0], "blur_radius": 31, "sigma": 5.0},
        }
    prompt["5"] = {
        "class_type": "ImageScaleBy",
        "inputs": {"image": ["4", 0], "upscale_method": "nearest-exact", "scale_by": 0.1},
    }
    prompt["6"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["5", 0], "filename_prefix": f"q/{prefix}"},
    }
    return prompt


def tiny(color: int, prefix: str) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"q/{prefix}"}},
    }


async def test_queue_delete_clear_and_interrupt_follow_capture_06(runtime: RuntimeClient) -> None:
    socket = await runtime.socket("queue-06")
    s1 = await runtime.submit(slow(1, "S1"), "queue-06")
    await socket.until(lambda m: is_type(m, "executing") and m["data"]["node"] == "1")
    s2 = await runtime.submit(slow(2, "S2"), "queue-06")
    s3 = await runtime.submit(slow(3, "S3"), "queue-06")
    s4 = await runtime.submit(slow(4, "S4"), "queue-06")
    _, t5_answer = await runtime.post(
        "/prompt", {"prompt": tiny(5, "T5"), "client_id": "queue-06", "front": True}
    )
    _, t6_answer = await runtime.post(
        "/prompt", {"prompt": tiny(6, "T6"), "client_id": "queue-06", "number": -1000}
    )
    assert t5_answer["number"] == -4
    assert t6_answer["number"] == -1000.0

    _, queue = await runtime.get("/queue")
    assert [item[1] for item in queue["queue_running"]] == [s1]
    # The raw heap, exactly the shape the capture shows: [-1000.0, -47, 46, 45, 44].
    assert [item[0] for item in queue["queue_pending"]] == [-1000.0, -4, 3, 2, 1]
    assert len(queue["queue_pending"][0]) == 5
    assert (await runtime.get("/prompt"))[1] == {"exec_info": {"queue_remaining": 6}}

    assert await runtime.post("/queue", {"delete": [s3]}) == (200, b"")
    assert await runtime.post("/queue", {"delete": [s1]}) == (200, b"")  # running: ignored
    _, queue = await runtime.get("/queue")
    assert s3 not in [item[1] for item in queue["queue_pending"]]
    assert [item[1] for item in queue["queue_running"]] == [s1]

    assert await runtime.post("/interrupt", {"prompt_id": s4}) == (200, b"")  # pending: no-op
    assert await runtime.post("/interrupt", {"prompt_id": s1}) == (200, b"")
    run = await socket.until_done(s1)
    ending = [m for m in run if isinstance(m, dict) and m["type"] in ("executing", "execution_interrupted")][
        -3:
    ]
    interrupted = ending[1]["data"]
    assert ending[0]["data"]["node"] == interrupted["node_id"]  # `executing <next>` then the interruption
    assert is_type(ending[1], "execution_interrupted")
    assert set(interrupted) == {"prompt_id", "node_id", "node_type", "executed", "timestamp"}
    assert interrupted["node_type"] == "ImageBlur"

    t6 = t6_answer["prompt_id"]
    order = []
    for _ in range(2):
        done = await socket.until(lambda m: is_type(m, "execution_success"))
        order.append(done[-1]["data"]["prompt_id"])
    assert order == [t6, t5_answer["prompt_id"]]
    await socket.until(
        lambda m: is_type(m, "executing") and m["data"].get("prompt_id") == s2 and m["data"]["node"] == "1"
    )
    assert await runtime.post("/queue", {"clear": True}) == (200, b"")
    assert [item[1] for item in (await runtime.get("/queue"))[1]["queue_pending"]] == []
    async with runtime.session.post(runtime.base + "/interrupt") as response:
        assert (response.status, await response.read()) == (200, b"")
    run = await socket.until_done(s2)
    assert "execution_interrupted" in kinds(run)

    _, history = await runtime.get(f"/history/{s1}")
    status = history[s1]["status"]
    assert (status["status_str"], status["completed"]) == ("error", False)
    assert [m[0] for m in status["messages"]] == [
        "execution_start",
        "execution_cached",
        "execution_interrupted",
    ]
    assert history[s1]["outputs"] == {}
    assert (await runtime.get(f"/history/{s3}"))[1] == {}
    assert (await runtime.get(f"/history/{s4}"))[1] == {}
    assert (await runtime.get("/queue"))[1] == {"queue_running": [], "queue_pending": []}


async def test_interrupt_while_idle_does_not_poison_the_next_prompt(runtime: RuntimeClient) -> None:
    socket = await runtime.socket("idle-06")
    assert await runtime.post("/interrupt", {}) == (200, b"")
    run = await socket.until_done(await runtime.submit(tiny(7, "idle"), "idle-06"))
    assert "execution_success" in kinds(run)
