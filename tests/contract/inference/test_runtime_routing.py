"""Who hears what (capture 07) and the one-socket-per-client-id traps (captures 13 and 14)."""

from __future__ import annotations

from typing import Any

from tests.contract.inference.harness import RuntimeClient, is_type, kinds
from tests.contract.inference.test_runtime_queue import slow, tiny

LIFECYCLE = {"execution_start", "execution_cached", "executing", "executed", "execution_success"}


def types(messages: list[Any]) -> set[str]:
    return set(kinds(messages))


async def test_events_reach_only_the_prompts_client(runtime: RuntimeClient) -> None:
    a, b, c = await runtime.socket("clientA"), await runtime.socket("clientB"), await runtime.socket()
    assert c.received[0]["data"]["sid"]  # a socket without clientId gets a generated id
    prompt_id = await runtime.submit(
        tiny(1, "own"), "clientA", extra_data={"my_tag": "hello", "api_key_comfy_org": "SECRET"}
    )
    run = await a.until_done(prompt_id)
    assert types(run) >= LIFECYCLE
    for other in (b, c):
        assert types(await other.quiet(0.3)) == {"status"}

    _, history = await runtime.get(f"/history/{prompt_id}")
    extra = history[prompt_id]["prompt"][3]
    assert extra["my_tag"] == "hello"
    assert extra["client_id"] == "clientA"
    assert "api_key_comfy_org" not in extra


async def test_prompt_without_client_id_runs_silently(runtime: RuntimeClient) -> None:
    a = await runtime.socket("clientA")
    prompt_id = await runtime.submit(tiny(2, "noclient"), None)
    heard = await a.quiet(0.5)
    assert types(heard) <= {"status", "progress_state"}
    assert "progress_state" in types(heard)  # broadcast when the prompt has no client
    _, history = await runtime.get(f"/history/{prompt_id}")
    assert history[prompt_id]["status"]["status_str"] == "success"


async def test_ghost_client_and_client_id_inside_extra_data(runtime: RuntimeClient) -> None:
    a, b = await runtime.socket("clientA"), await runtime.socket("clientB")
    await runtime.submit(tiny(3, "ghost"), "ghost-client")
    assert types(await a.quiet(0.4)) == {"status"}
    status, answer = await runtime.post(
        "/prompt", {"prompt": tiny(4, "inextra"), "extra_data": {"client_id": "clientB"}}
    )
    assert status == 200
    assert types(await b.until_done(answer["prompt_id"])) >= LIFECYCLE
    assert types(await a.quiet(0.3)) == {"status"}
    status, answer = await runtime.post(
        "/prompt", {"prompt": tiny(5, "both"), "client_id": "clientA", "extra_data": {"client_id": "clientB"}}
    )
    assert types(await a.until_done(answer["prompt_id"])) >= LIFECYCLE


async def test_partial_execution_targets_run_only_the_named_outputs(runtime: RuntimeClient) -> None:
    a = await runtime.socket("clientA")
    prompt = {**tiny(6, "t"), "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    prompt_id = await runtime.submit(prompt, "clientA", partial_execution_targets=["3"])
    run = await a.until_done(prompt_id)
    assert [m["data"]["node"] for m in run if is_type(m, "executed")] == ["3"]
    _, history = await runtime.get(f"/history/{prompt_id}")
    assert history[prompt_id]["prompt"][4] == ["3"]


async def test_reconnect_replays_executing_without_prompt_id(runtime: RuntimeClient) -> None:
    first = await runtime.socket("reconnect")
    prompt_id = await runtime.submit(slow(8, "reconnect"), "reconnect")
    await first.until(lambda m: is_type(m, "executing") and m["data"]["node"] == "2")
    await first.ws.close()
    again = await runtime.socket("reconnect")
    replay = await again.next()
    assert again.received[0]["data"]["status"]["exec_info"]["queue_remaining"] == 1
    assert replay["type"] == "executing"
    assert set(replay["data"]) == {"node"}
    duplicate = await runtime.socket("reconnect")
    run = await duplicate.until_done(prompt_id)
    assert "execution_success" in kinds(run)
    # The replaced socket stays open but the prompt's ending goes to the newest socket only.
    await again.quiet(0.2)
    assert "execution_success" not in kinds(again.received)


async def test_closing_a_stale_duplicate_silences_the_new_socket(runtime: RuntimeClient) -> None:
    old = await runtime.socket("dup")
    new = await runtime.socket("dup")
    await old.ws.close()
    prompt_id = await runtime.submit(tiny(9, "dupclose"), "dup")
    assert await new.quiet(0.5) == []
    _, history = await runtime.get(f"/history/{prompt_id}")
    assert history[prompt_id]["status"]["status_str"] == "success"
