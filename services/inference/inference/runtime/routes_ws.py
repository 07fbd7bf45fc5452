"""GET /ws: registration, the connect frames, the reconnect replay and feature-flag negotiation."""

from __future__ import annotations

import json
import uuid

from aiohttp import WSMsgType, web

from inference.runtime import protocol
from inference.runtime.state import Runtime


def add_routes(routes: web.RouteTableDef, rt: Runtime) -> None:
    @routes.get("/ws")
    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId", "") or uuid.uuid4().hex
        rt.hub.register(sid, ws)
        try:
            status = {"status": protocol.queue_info(rt.queue.remaining()), "sid": sid}
            await ws.send_json({"type": "status", "data": status})
            executor = rt.executor
            if executor.client_id == sid and executor.last_node_id is not None:
                # The reconnect replay carries only the node, no prompt_id (capture 13).
                await ws.send_json({"type": "executing", "data": {"node": executor.last_node_id}})
            first = True
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(message.data)
                except ValueError:
                    continue
                if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                    rt.hub.flags[sid] = data.get("data") or {}
                    await ws.send_json({"type": "feature_flags", "data": protocol.SERVER_FEATURES})
                first = False
        finally:
            # Unregisters the sid even when a newer socket owns it now: ComfyUI's stale-socket trap.
            rt.hub.unregister(sid)
        return ws
