"""The ComfyUI adapter against recorded transcripts, replayed by a scripted stand-in server.

The stand-in (tests/support/comfyui_replay.py) plays back the frames a real ComfyUI 0.33.0 sent, so these
tests cover what the local runtime cannot show: reconnects mid-run, a stale duplicate socket, partial
acceptance, sampling progress with previews, an interrupt inside KSampler and a backend restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from inference.adapters.comfyui import frames
from inference.adapters.comfyui.backend import ComfyUIBackend, Tuning
from inference.domain import prompts as p
from inference.domain.violations import ViolationReason
from servicekit import errors
from tests.support.comfyui_replay import ReplayComfyUI, Script, binary_frame, capture, recorded_frames

TUNING = Tuning(
    backoff_initial=0.05, backoff_max=0.2, silence_seconds=0.5, watchdog_interval=0.1, lost_grace_seconds=1.0
)
PROMPT_ID = "7d1b1b0e-9a52-5c3e-8a0e-0f3f1f2b9c11"
GRAPH: dict[str, Any] = {"1": {"class_type": "EmptyImage", "inputs": {}}}


@pytest.fixture
async def fake() -> AsyncIterator[ReplayComfyUI]:
    server = ReplayComfyUI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def backend(fake: ReplayComfyUI) -> AsyncIterator[ComfyUIBackend]:
    client = ComfyUIBackend("replay", fake.url, "inference-test-replay", TUNING)
    await client.start()
    await wait_for(lambda: client.connected)
    yield client
    await client.close()


async def wait_for(condition: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the condition never held")


async def collect(watch: Any, timeout: float = 10.0) -> list[p.PromptEvent]:
    async def run() -> list[p.PromptEvent]:
        return [event async for event in watch]

    return await asyncio.wait_for(run(), timeout)


def basic_script(**kwargs: Any) -> Script:
    recorded = capture("01_basic_prompt_ws_sequence")["prompt_id"]
    return Script(recorded_frames("01_basic_prompt_ws_sequence", recorded), recorded, **kwargs)


async def test_a_recorded_prompt_streams_every_event_in_order(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    fake.scripts.append(basic_script())
    watch = backend.watch(PROMPT_ID)
    submission = await backend.submit(PROMPT_ID, GRAPH, previews=False)
    events = await collect(watch)

    assert submission.prompt_id == PROMPT_ID
    assert not submission.rejected
    assert events[0] == p.PromptStarted(())
    assert [e.node_id for e in events if isinstance(e, p.NodeExecuting)] == ["1", "2", "3", "4", "5"]
    outputs = [e for e in events if isinstance(e, p.NodeOutput)]
    assert [(o.node_id, o.files[0].type) for o in outputs] == [("4", "output"), ("5", "temp")]
    assert outputs[0].files[0] == p.OutputFile("basic_00001_.png", "capture", "output")
    assert events[-1] == p.PromptSucceeded()
    assert fake.prompts[PROMPT_ID].client_id == "inference-test-replay"


async def test_a_reconnect_mid_run_attributes_the_replayed_executing_and_finishes(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    recorded = capture("13_reconnect_and_duplicate_clientId")["prompt_id"]
    before = recorded_frames("13_reconnect_and_duplicate_clientId", recorded, "A_first")
    after = [
        e["message"]
        for e in capture("13_reconnect_and_duplicate_clientId")["events"]
        if e.get("socket") == "A_duplicate"
        and e["dir"] == "ws-recv"
        and e["message"]["data"].get("prompt_id")
    ]
    script = Script([*before, *after], recorded, hold_before=len(before))
    fake.scripts.append(script)
    watch = backend.watch(PROMPT_ID)
    await backend.submit(PROMPT_ID, GRAPH, previews=False)
    await wait_for(lambda: fake.prompts[PROMPT_ID].node == "2")
    await asyncio.sleep(0.05)

    await fake.drop_sockets(backend.client_id)
    await wait_for(lambda: backend.reconnects >= 2 and backend.connected)
    script.released.set()
    events = await collect(watch)

    executing = [e.node_id for e in events if isinstance(e, p.NodeExecuting)]
    assert executing[:2] == ["1", "2"]
    assert executing[-3:] == ["4", "5", "6"]
    assert [e.node_id for e in events if isinstance(e, p.NodeOutput)] == ["6"]
    assert events[-1] == p.PromptSucceeded()


async def test_events_missed_while_disconnected_are_recovered_from_history(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    script = basic_script()
    hold = next(i for i, f in enumerate(script.frames) if isinstance(f, dict) and f["type"] == "executed")
    script.hold_before = hold
    fake.scripts.append(script)
    watch = backend.watch(PROMPT_ID)
    await backend.submit(PROMPT_ID, GRAPH, previews=False)
    await wait_for(lambda: fake.prompts[PROMPT_ID].node == "4")

    await fake.drop_sockets(backend.client_id)
    script.released.set()  # the rest of the prompt plays while no socket is registered
    events = await collect(watch)

    assert [e.node_id for e in events if isinstance(e, p.NodeOutput)] == ["4", "5"]
    assert events[-1] == p.PromptSucceeded()


async def test_a_stale_duplicate_socket_closing_does_not_lose_the_prompt(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    # Scenario 14: a second socket under our client id replaces ours; when it closes, the id is unregistered
    # and our still-open socket receives nothing more.
    async with aiohttp.ClientSession() as session:
        duplicate = await session.ws_connect(f"{fake.url}/ws?clientId={backend.client_id}")
        await duplicate.receive()
        await duplicate.close()
    await wait_for(lambda: backend.client_id not in fake.sockets)
    reconnects = backend.reconnects

    fake.scripts.append(basic_script())
    watch = backend.watch(PROMPT_ID)
    await backend.submit(PROMPT_ID, GRAPH, previews=False)
    events = await collect(watch)

    assert events[-1] == p.PromptSucceeded()
    assert [e.node_id for e in events if isinstance(e, p.NodeOutput)] == ["4", "5"]
    await wait_for(lambda: backend.reconnects > reconnects and backend.client_id in fake.sockets)


async def test_partial_acceptance_names_the_dropped_branch(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    answer = next(
        e["response_json"]
        for e in capture("03_post_prompt_validation_errors")["events"]
        if e.get("label") == "one_valid_and_one_invalid_output_branch"
    )
    fake.scripts.append(Script([], "", response=answer))
    submission = await backend.submit(PROMPT_ID, GRAPH, previews=False)

    [violation] = submission.rejected
    assert (violation.node_id, violation.node_type, violation.input_name) == ("9", "ImageInvert", "image")
    assert violation.reason is ViolationReason.MISSING_REQUIRED_INPUT


@pytest.mark.parametrize(
    ("label", "node_id", "input_name", "reason"),
    [
        ("link_to_missing_node", "3", "images", ViolationReason.LINK_TO_MISSING_NODE),
        ("link_bad_output_index", "3", "images", ViolationReason.BAD_OUTPUT_INDEX),
        ("value_above_max", "2", "scale_by", ViolationReason.VALUE_OUT_OF_RANGE),
        ("cycle_self_link", "2", "", ViolationReason.CYCLE),
        ("unknown_class_type", "9", "", ViolationReason.UNKNOWN_NODE_TYPE),
        ("missing_input_file", "1", "image", ViolationReason.INPUT_FILE_MISSING),
    ],
)
async def test_a_rejected_prompt_becomes_invalid_argument_naming_node_and_input(
    fake: ReplayComfyUI,
    backend: ComfyUIBackend,
    label: str,
    node_id: str,
    input_name: str,
    reason: ViolationReason,
) -> None:
    answer = next(e for e in capture("03_post_prompt_validation_errors")["events"] if e.get("label") == label)
    fake.scripts.append(Script([], "", response=answer["response_json"], status=400))
    with pytest.raises(errors.InvalidArgument) as raised:
        await backend.submit(PROMPT_ID, GRAPH, previews=False)

    assert raised.value.reason == "WORKFLOW_INVALID"
    assert raised.value.metadata["first_reason"] == reason.value
    field = f'workflow_json["{node_id}"]' + (f".inputs.{input_name}" if input_name else "")
    assert raised.value.violations[0].field == field


async def test_an_execution_error_names_node_type_and_exception(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    recorded = capture("04_execution_error")["prompt_ids"]["mask_batch_mismatch"]
    fake.scripts.append(Script(recorded_frames("04_execution_error", recorded), recorded))
    watch = backend.watch(PROMPT_ID)
    await backend.submit(PROMPT_ID, GRAPH, previews=False)
    events = await collect(watch)

    failure = events[-1]
    assert isinstance(failure, p.PromptFailed)
    assert (failure.node_id, failure.node_type, failure.exception_type) == (
        "4",
        "ImageCropToMask",
        "ValueError",
    )
    assert "Mask batch 2 does not match image batch 3" in failure.message
    assert failure.traceback
    assert "execution.py" in failure.traceback[0]


async def test_an_interrupt_inside_ksampler_ends_the_prompt_without_executing(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    recorded = capture("18_ksampler_interrupt")["prompt_ids"]["P1"]
    fake.scripts.append(Script(recorded_frames("18_ksampler_interrupt", recorded, "legacy"), recorded))
    watch = backend.watch(PROMPT_ID)
    await backend.submit(PROMPT_ID, GRAPH, previews=True)
    events = await collect(watch)

    progress = [(e.node_id, e.value, e.max) for e in events if isinstance(e, p.NodeProgress)]
    assert progress == [("3", 1, 20), ("3", 2, 20)]
    previews = [e for e in events if isinstance(e, p.PreviewImage)]
    assert len(previews) == 2
    assert all(e.mime_type == "image/jpeg" for e in previews)
    assert events[-1] == p.PromptInterrupted("3", "KSampler")
    assert not isinstance(events[-2], p.NodeExecuting)


async def test_sampling_previews_with_metadata_name_their_node(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    events_17 = capture("17_ksampler_preview_metadata")["events"]
    recorded = next(
        e["message"]["data"]["prompt_id"]
        for e in events_17
        if e.get("message", {}).get("type") == "execution_start"
    )
    fake.scripts.append(Script(recorded_frames("17_ksampler_preview_metadata", recorded, "flags"), recorded))
    watch = backend.watch(PROMPT_ID)
    await backend.submit(PROMPT_ID, GRAPH, previews=True)
    events = await collect(watch, timeout=20)

    previews = [e for e in events if isinstance(e, p.PreviewImage)]
    steps = [e for e in events if isinstance(e, p.NodeProgress)]
    assert previews
    assert len(previews) == len(steps)
    assert {e.node_id for e in previews} == {"3"}
    assert events[-1] == p.PromptSucceeded()


async def test_a_restarted_backend_that_forgot_the_prompt_reports_it_lost(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    fake.scripts.append(basic_script(hold_before=0))
    watch = backend.watch(PROMPT_ID)
    await backend.submit(PROMPT_ID, GRAPH, previews=False)
    await wait_for(lambda: fake.running == PROMPT_ID)

    fake.restart()
    await fake.drop_sockets(backend.client_id)
    events = await collect(watch)

    assert isinstance(events[-1], p.PromptLost)


async def test_a_queued_prompt_reports_its_position_in_run_order(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    first = basic_script(hold_before=0)
    fake.scripts.extend([first, basic_script(), basic_script()])
    second, third = "a0000000-0000-5000-8000-000000000002", "a0000000-0000-5000-8000-000000000003"
    await backend.submit(PROMPT_ID, GRAPH, previews=False)
    watches = [backend.watch(second), backend.watch(third)]
    await backend.submit(second, GRAPH, previews=False)
    await backend.submit(third, GRAPH, previews=False)
    await wait_for(lambda: watches[1].position == 2 and watches[0].position == 1)

    assert (await backend.locate(third))[:2] == ("pending", 2)
    first.released.set()


async def test_a_prompt_alone_on_the_backend_costs_no_queue_lookup(
    fake: ReplayComfyUI, backend: ComfyUIBackend
) -> None:
    fake.scripts.append(basic_script())
    watch = backend.watch(PROMPT_ID)
    await backend.submit(PROMPT_ID, GRAPH, previews=False)
    events = await collect(watch)

    assert isinstance(events[-1], p.PromptSucceeded)
    assert not any(isinstance(e, p.PromptQueued) for e in events)
    assert fake.queue_reads == 0


def test_the_three_binary_frame_layouts_decode() -> None:
    recorded = [e for e in capture("05_binary_frames")["events"] if e.get("kind") == "binary"]
    decoded = [frames.decode_binary(binary_frame(e)) for e in recorded]

    legacy, text, with_metadata = decoded[0], decoded[1], decoded[2]
    assert isinstance(legacy.event, p.PreviewImage)
    assert legacy.event.mime_type == "image/png"
    assert legacy.prompt_id is None
    assert legacy.event.image.startswith(b"\x89PNG")
    assert text.event == p.NodeText("4", "width: 160, height: 120\n batch size: 1")
    assert isinstance(with_metadata.event, p.PreviewImage)
    assert with_metadata.event.node_id == "3"
    assert with_metadata.prompt_id == "1299fdf0-f91e-4a79-afa3-778e3870f2cb"


def test_a_fully_cached_history_entry_replays_outputs_and_success() -> None:
    entry = next(
        e["response_json"]
        for e in capture("01_basic_prompt_ws_sequence")["events"]
        if e.get("path", "").startswith("/history/")
    )
    (history,) = entry.values()
    events = frames.history_events(json.loads(json.dumps(history)))

    assert isinstance(events[0], p.PromptStarted)
    assert {e.node_id for e in events if isinstance(e, p.NodeOutput)} == {"4", "5"}
    assert events[-1] == p.PromptSucceeded()
