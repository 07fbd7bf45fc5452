"""POST/GET /prompt, /queue, /interrupt, /free and /history."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from inference.runtime import protocol
from inference.runtime.state import Runtime
from inference.runtime.validation import validate_prompt


def add_routes(routes: web.RouteTableDef, rt: Runtime) -> None:
    @routes.get("/prompt")
    async def get_prompt(request: web.Request) -> web.Response:
        return web.json_response(protocol.queue_info(rt.queue.remaining()))

    @routes.post("/prompt")
    async def post_prompt(request: web.Request) -> web.Response:
        # A body that is not JSON raises here and becomes aiohttp's plain-text 500, as in ComfyUI.
        data = await request.json()
        # The body may be any JSON value; ComfyUI only tests membership, so an array means "no prompt".
        fields = data if isinstance(data, dict) else {}
        number = rt.queue.next_number(fields.get("number"), bool(fields.get("front")))
        if "prompt" not in data:
            return web.json_response({"error": protocol.NO_PROMPT, "node_errors": {}}, status=400)
        return _submit(rt, data, number)

    @routes.get("/queue")
    async def get_queue(request: web.Request) -> web.Response:
        running = [item.public() for item in rt.queue.running.values()]
        pending = [item.public() for item in rt.queue.pending]
        return web.json_response({"queue_running": running, "queue_pending": pending})

    @routes.post("/queue")
    async def post_queue(request: web.Request) -> web.Response:
        data = await request.json()
        if data.get("clear"):
            rt.queue.wipe()
        if "delete" in data:
            for prompt_id in data["delete"]:
                rt.queue.delete(prompt_id)
        return web.Response(status=200)

    @routes.post("/interrupt")
    async def post_interrupt(request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except json.JSONDecodeError:
            data = {}
        prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
        # Only ever the running prompt; a prompt_id that is not running is a silent no-op.
        if not prompt_id or prompt_id in rt.queue.running_ids():
            rt.executor.interrupt.set()
        return web.Response(status=200)

    @routes.post("/free")
    async def post_free(request: web.Request) -> web.Response:
        data = await request.json()
        if data.get("free_memory", False):
            if rt.queue.running:
                rt.queue.set_flag("free_memory", True)
            else:
                rt.executor.reset()
        return web.Response(status=200)

    @routes.get("/history")
    async def get_history(request: web.Request) -> web.Response:
        max_items = request.query.get("max_items")
        offset = request.query.get("offset")
        history = rt.queue.get_history(
            int(max_items) if max_items is not None else None, int(offset) if offset is not None else -1
        )
        return web.json_response(history)

    @routes.get("/history/{prompt_id}")
    async def get_history_entry(request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = rt.queue.history.get(prompt_id)
        return web.json_response({} if entry is None else {prompt_id: entry})

    @routes.post("/history")
    async def post_history(request: web.Request) -> web.Response:
        data = await request.json()
        if data.get("clear"):
            rt.queue.history.clear()
        if "delete" in data:
            for prompt_id in data["delete"]:
                rt.queue.history.pop(prompt_id, None)
        return web.Response(status=200)


def _submit(rt: Runtime, data: dict[str, Any], number: float) -> web.Response:
    prompt = data["prompt"]
    client_prompt_id = data.get("prompt_id")
    if client_prompt_id is None:
        prompt_id = str(uuid.uuid4())
    elif protocol.is_canonical_uuid(client_prompt_id):
        prompt_id = client_prompt_id
    else:
        return web.json_response({"error": protocol.INVALID_PROMPT_ID, "node_errors": {}}, status=400)
    targets = data.get("partial_execution_targets") if "partial_execution_targets" in data else None
    outcome = validate_prompt(prompt, targets, rt.dirs)
    extra = data.get("extra_data", {})
    if "client_id" in data:
        extra["client_id"] = data["client_id"]
    if not outcome.ok:
        return web.json_response({"error": outcome.error, "node_errors": outcome.node_errors}, status=400)
    sensitive = {key: extra.pop(key) for key in protocol.SENSITIVE_EXTRA_DATA_KEYS if key in extra}
    extra["create_time"] = protocol.now_ms()
    rt.queue.put(rt.queue.make_item(number, prompt_id, prompt, extra, outcome.outputs, sensitive))
    return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": outcome.node_errors})
