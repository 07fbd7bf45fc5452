"""Decoding ComfyUI WebSocket frames into prompt events (protocol notes, sections 3.4 and 3.5)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from inference.domain import prompts as p

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4
IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}


@dataclass(frozen=True)
class Frame:
    """One decoded frame: the event, the prompt it names (None when the frame does not say), and extras."""

    event: p.PromptEvent | None = None
    prompt_id: str | None = None
    queue_remaining: int | None = None
    sid: str | None = None
    kind: str = ""
    prompt_done: bool = False


def _outputs(output: Any) -> tuple[p.OutputFile, ...]:
    images = output.get("images") if isinstance(output, dict) else None
    return tuple(
        p.OutputFile(str(i.get("filename", "")), str(i.get("subfolder", "")), str(i.get("type", "output")))
        for i in images or ()
        if isinstance(i, dict) and i.get("filename")
    )


def _status(data: dict[str, Any]) -> Frame:
    info = (data.get("status") or {}).get("exec_info") or {}
    remaining = info.get("queue_remaining")
    sid = data.get("sid")
    return Frame(
        queue_remaining=int(remaining) if isinstance(remaining, int) else None,
        sid=str(sid) if sid else None,
        kind="status",
    )


def _executing(data: dict[str, Any], prompt_id: str | None) -> Frame:
    node = data.get("node")
    if node is None:
        # `executing` with node null is the last frame of a prompt, written after its history entry.
        return Frame(prompt_id=prompt_id, kind="executing", prompt_done=True)
    return Frame(p.NodeExecuting(str(node)), prompt_id, kind="executing")


def _failed(data: dict[str, Any]) -> p.PromptFailed:
    return p.PromptFailed(
        node_id=str(data.get("node_id") or ""),
        node_type=str(data.get("node_type") or ""),
        exception_type=str(data.get("exception_type") or ""),
        message=str(data.get("exception_message") or "the node failed"),
        traceback=tuple(str(line) for line in data.get("traceback") or ()),
    )


def decode_text(raw: str) -> Frame:
    """Decodes one text frame; unknown types decode to an empty Frame (ignored)."""
    try:
        message = json.loads(raw)
    except ValueError:
        return Frame()
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        return Frame()
    kind, data = str(message.get("type")), message["data"]
    prompt_id = data.get("prompt_id") if isinstance(data.get("prompt_id"), str) else None
    if kind == "status":
        return _status(data)
    if kind == "executing":
        return _executing(data, prompt_id)
    event: p.PromptEvent | None = None
    # execution_start is always followed at once by execution_cached, which also says what is cached.
    if kind == "execution_cached":
        event = p.PromptStarted(tuple(str(n) for n in data.get("nodes") or ()))
    elif kind == "progress":
        event = p.NodeProgress(
            str(data.get("node") or ""), int(data.get("value") or 0), int(data.get("max") or 0)
        )
    elif kind == "executed":
        event = p.NodeOutput(str(data.get("node") or ""), _outputs(data.get("output")))
    elif kind == "execution_success":
        event = p.PromptSucceeded()
    elif kind == "execution_error":
        event = _failed(data)
    elif kind == "execution_interrupted":
        event = p.PromptInterrupted(str(data.get("node_id") or ""), str(data.get("node_type") or ""))
    # progress_state, feature_flags and anything newer carry nothing the service needs.
    return Frame(event, prompt_id, kind=kind)


def decode_binary(raw: bytes) -> Frame:
    """Decodes one binary frame: PREVIEW_IMAGE (1), TEXT (3) or PREVIEW_IMAGE_WITH_METADATA (4)."""
    if len(raw) < 8:
        return Frame()
    (event_type,) = struct.unpack(">I", raw[:4])
    if event_type == PREVIEW_IMAGE:
        (image_format,) = struct.unpack(">I", raw[4:8])
        mime = IMAGE_FORMATS.get(image_format, "application/octet-stream")
        return Frame(p.PreviewImage("", mime, raw[8:]), kind="preview")
    if event_type == TEXT:
        (length,) = struct.unpack(">I", raw[4:8])
        node_id = raw[8 : 8 + length].decode("utf-8", "replace")
        text = raw[8 + length :].decode("utf-8", "replace")
        return Frame(p.NodeText(node_id, text), kind="text")
    if event_type == PREVIEW_IMAGE_WITH_METADATA:
        (length,) = struct.unpack(">I", raw[4:8])
        try:
            metadata = json.loads(raw[8 : 8 + length])
        except ValueError:
            return Frame()
        node_id = str(metadata.get("display_node_id") or metadata.get("node_id") or "")
        mime = str(metadata.get("image_type") or "image/jpeg")
        prompt_id = metadata.get("prompt_id") if isinstance(metadata.get("prompt_id"), str) else None
        return Frame(p.PreviewImage(node_id, mime, raw[8 + length :]), prompt_id, kind="preview")
    return Frame()


def history_events(entry: dict[str, Any]) -> list[p.PromptEvent]:
    """The events a /history entry proves happened: start, outputs, and the terminal message."""
    events: list[p.PromptEvent] = []
    status = entry.get("status") or {}
    messages = status.get("messages") or []
    for item in messages:
        if isinstance(item, list) and len(item) == 2 and item[0] == "execution_cached":
            events.append(p.PromptStarted(tuple(str(n) for n in (item[1] or {}).get("nodes") or ())))
    for node_id, output in (entry.get("outputs") or {}).items():
        events.append(p.NodeOutput(str(node_id), _outputs(output)))
    terminal: p.PromptEvent | None = None
    for item in messages:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict)):
            continue
        if item[0] == "execution_success":
            terminal = p.PromptSucceeded()
        elif item[0] == "execution_error":
            terminal = _failed(item[1])
        elif item[0] == "execution_interrupted":
            terminal = p.PromptInterrupted(
                str(item[1].get("node_id") or ""), str(item[1].get("node_type") or "")
            )
    if terminal is None and status.get("completed"):
        terminal = p.PromptSucceeded()
    if terminal is None and status.get("status_str") == "error":
        terminal = p.PromptFailed("", "", "", "the backend reports the prompt failed")
    if terminal is not None:
        events.append(terminal)
    return events
