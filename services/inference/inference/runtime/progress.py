"""Per-prompt node progress: the cumulative `progress_state` snapshots and the `progress` hook nodes call."""

from __future__ import annotations

from typing import Any

from inference.runtime import protocol
from inference.runtime.hub import Hub
from inference.runtime.nodes.io_nodes import encode_preview


class ProgressState:
    def __init__(self, hub: Hub, prompt_id: str, client_id: str | None) -> None:
        self.hub = hub
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.nodes: dict[str, dict[str, Any]] = {}

    def _entry(self, node_id: str) -> dict[str, Any]:
        # A fresh entry is "pending" with integer 0/1, which is why cached nodes report 1/1 as ints.
        return self.nodes.setdefault(node_id, {"state": "pending", "value": 0, "max": 1})

    def start(self, node_id: str) -> None:
        self._entry(node_id).update(state="running", value=0.0, max=1.0)
        self.hub.send("progress_state", self.snapshot(), self.client_id)

    def finish(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state="finished", value=entry["max"])
        self.hub.send("progress_state", self.snapshot(), self.client_id)

    def update_from_thread(
        self, node_id: str, value: int, total: int, preview: tuple[str, Any] | None
    ) -> None:
        """The `progress` hook: state snapshot, then (flags client) event 4, `progress`, (legacy) event 1."""
        self._entry(node_id).update(state="running", value=value, max=total)
        send = self.hub.send_threadsafe
        send("json", {"type": "progress_state", "data": self.snapshot()}, self.client_id)
        with_metadata = self.hub.supports_preview_metadata(self.client_id)
        encoded = (preview[0], encode_preview(preview[0], preview[1])) if preview is not None else None
        if encoded is not None and with_metadata:
            metadata = {
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
                "image_type": "image/png" if encoded[0] == "PNG" else "image/jpeg",
            }
            send("bytes", protocol.preview_with_metadata_frame(metadata, encoded[1]), self.client_id)
        progress = {"value": value, "max": total, "prompt_id": self.prompt_id, "node": node_id}
        send("json", {"type": "progress", "data": progress}, self.client_id)
        if encoded is not None and not with_metadata:
            send("bytes", protocol.preview_frame(encoded[0], encoded[1]), self.client_id)

    def snapshot(self) -> dict[str, Any]:
        active = {
            node_id: {
                "value": e["value"],
                "max": e["max"],
                "state": e["state"],
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, e in self.nodes.items()
            if e["state"] != "pending"
        }
        return {"prompt_id": self.prompt_id, "nodes": {k: dict(v) for k, v in active.items()}}
