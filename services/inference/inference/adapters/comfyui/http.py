"""ComfyUI's HTTP routes, each call returning plain values or raising domain errors."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from inference.adapters.comfyui.errors import backend_unavailable, node_error_violations, rejection_violations
from inference.domain.prompts import OutputFile
from inference.domain.violations import invalid_workflow
from inference.service.ports import Submission
from servicekit import errors

NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError)


@dataclass(frozen=True)
class QueueSnapshot:
    """GET /queue: the running prompt ids and the pending ones in run order (sorted by number)."""

    running: list[str]
    pending: list[str]

    def position(self, prompt_id: str) -> int | None:
        """The 1-based position of a pending prompt, or None when it is not pending."""
        return self.pending.index(prompt_id) + 1 if prompt_id in self.pending else None


def _sorted_pending(items: list[Any]) -> list[str]:
    # queue_pending is not sorted (protocol notes, section 5): order by `number` ourselves.
    valid = [i for i in items if isinstance(i, list) and len(i) >= 2]
    return [str(i[1]) for i in sorted(valid, key=lambda i: float(i[0]))]


class ComfyUIHttp:
    """The HTTP half of one backend."""

    def __init__(self, name: str, url: str, session: aiohttp.ClientSession, timeout: float = 30.0) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with self.session.request(method, self.url + path, timeout=self.timeout, **kwargs) as reply:
                if reply.status >= 400:
                    raise backend_unavailable(self.name, f"{method} {path}", f"HTTP {reply.status}")
                text = await reply.text()
        except NETWORK_ERRORS as exc:
            raise backend_unavailable(self.name, f"{method} {path}", exc) from None
        try:
            return json.loads(text) if text else None
        except ValueError:
            raise backend_unavailable(self.name, f"{method} {path}", "the answer is not JSON") from None

    async def system_stats(self) -> dict[str, Any]:
        """GET /system_stats."""
        body = await self._json("GET", "/system_stats")
        return body if isinstance(body, dict) else {}

    async def object_info(self) -> dict[str, Any]:
        """GET /object_info (the whole catalog, ~1.6 MB on a full ComfyUI)."""
        body = await self._json("GET", "/object_info")
        return body if isinstance(body, dict) else {}

    async def checkpoints(self) -> list[str]:
        """GET /models/checkpoints; an empty list when the route is missing."""
        try:
            body = await self._json("GET", "/models/checkpoints")
        except errors.Unavailable:
            return []
        return sorted(str(n) for n in body) if isinstance(body, list) else []

    async def queue(self) -> QueueSnapshot:
        """GET /queue."""
        body = await self._json("GET", "/queue") or {}
        running = [str(i[1]) for i in body.get("queue_running") or () if isinstance(i, list) and len(i) >= 2]
        return QueueSnapshot(running, _sorted_pending(list(body.get("queue_pending") or ())))

    async def find_workflow(self, prompt_id: str) -> dict[str, Any] | None:
        """The graph stored with `prompt_id` in the queue or the history, if the backend has it."""
        body = await self._json("GET", "/queue") or {}
        for item in [*(body.get("queue_running") or ()), *(body.get("queue_pending") or ())]:
            if (
                isinstance(item, list)
                and len(item) >= 3
                and item[1] == prompt_id
                and isinstance(item[2], dict)
            ):
                return item[2]
        entry = await self.history(prompt_id)
        prompt = (entry or {}).get("prompt")
        if isinstance(prompt, list) and len(prompt) >= 3 and isinstance(prompt[2], dict):
            return prompt[2]
        return None

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """GET /history/{prompt_id}: the entry, or None while the prompt has none (or never existed)."""
        body = await self._json("GET", f"/history/{prompt_id}") or {}
        entry = body.get(prompt_id) if isinstance(body, dict) else None
        return entry if isinstance(entry, dict) else None

    async def submit(self, payload: dict[str, Any]) -> Submission:
        """POST /prompt; a 400 becomes INVALID_ARGUMENT with the violations ComfyUI named."""
        path = "/prompt"
        try:
            async with self.session.post(self.url + path, json=payload, timeout=self.timeout) as reply:
                text = await reply.text()
                status = reply.status
        except NETWORK_ERRORS as exc:
            raise backend_unavailable(self.name, "POST /prompt", exc) from None
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        if status == 400:
            raise invalid_workflow(rejection_violations(body))
        if status != 200 or not isinstance(body, dict):
            raise backend_unavailable(self.name, "POST /prompt", f"HTTP {status}")
        return Submission(
            prompt_id=str(body.get("prompt_id")),
            number=float(body.get("number") or 0),
            rejected=node_error_violations(body.get("node_errors") or {}),
        )

    async def upload(self, filename: str, data: bytes, content_type: str) -> str:
        """POST /upload/image without overwrite; returns the name LoadImage must use (with its subfolder).

        ComfyUI keeps a file of that name holding the same bytes as it is, without writing it, and stores
        other bytes under a new name (`name (1).png`): a file a queued or running prompt reads never changes.
        """
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type=content_type)
        body = await self._json("POST", "/upload/image", data=form)
        if not isinstance(body, dict) or not body.get("name"):
            raise backend_unavailable(self.name, "POST /upload/image", "no file name in the answer")
        subfolder = str(body.get("subfolder") or "")
        return f"{subfolder}/{body['name']}" if subfolder else str(body["name"])

    async def view(self, file: OutputFile) -> tuple[bytes, str]:
        """GET /view of an output file: its bytes and content type."""
        params = {"filename": file.filename, "subfolder": file.subfolder, "type": file.type}
        try:
            async with self.session.get(self.url + "/view", params=params, timeout=self.timeout) as reply:
                if reply.status != 200:
                    raise backend_unavailable(self.name, f"GET /view {file.filename}", f"HTTP {reply.status}")
                return await reply.read(), reply.content_type
        except NETWORK_ERRORS as exc:
            raise backend_unavailable(self.name, f"GET /view {file.filename}", exc) from None

    async def delete_queued(self, prompt_id: str) -> None:
        """POST /queue {"delete": [id]}: removes a pending prompt; the running one is untouched."""
        await self._json("POST", "/queue", json={"delete": [prompt_id]})

    async def interrupt(self, prompt_id: str) -> None:
        """POST /interrupt {"prompt_id": id}: a no-op unless that prompt is the running one."""
        await self._json("POST", "/interrupt", json={"prompt_id": prompt_id})
