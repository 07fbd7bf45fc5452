"""What a backend reports about a prompt, turned into an execution's events; outputs are stored on the way."""

from __future__ import annotations

import time

from inference.domain import events as ev
from inference.domain import prompts as p
from inference.domain.workflow import Workflow
from inference.service.pool import Member
from inference.service.ports import ImageProbe, Storage
from inference.service.record import Execution, now
from servicekit import errors
from servicekit.logging import get_logger

log = get_logger("inference.executions")
OOM_MARKERS = ("out of memory", "outofmemory", "oom")


class Tracker:
    """Follows one prompt on one backend and writes the execution's events."""

    def __init__(
        self,
        execution: Execution,
        member: Member,
        workflow: Workflow,
        titles: dict[str, str],
        storage: Storage,
        probe: ImageProbe,
    ) -> None:
        self.execution = execution
        self.member = member
        self.workflow = workflow
        self.titles = titles
        self.storage = storage
        self.probe = probe
        self.artifacts: list[ev.Artifact] = []
        self.nodes_to_run = max(1, len(workflow.nodes))
        self.started_nodes: list[str] = []
        self.fraction = 0.0
        self.last_preview = 0.0

    def _advance(self, fraction: float) -> float:
        self.fraction = min(1.0, max(self.fraction, fraction))
        return self.fraction

    async def handle(self, event: p.PromptEvent) -> bool:
        """Applies one prompt event; True once the execution reached its terminal event."""
        x = self.execution
        if isinstance(event, p.PromptQueued):
            await x.emit(ev.Queued(event.position))
        elif isinstance(event, p.PromptStarted):
            x.start_time = x.start_time or now()
            cached = tuple(n for n in event.cached_node_ids if n in self.workflow.nodes)
            self.nodes_to_run = max(1, len(self.workflow.nodes) - len(cached))
            await x.emit(ev.Started(cached, self.nodes_to_run))
        elif isinstance(event, p.NodeExecuting):
            await self._node_started(event.node_id)
        elif isinstance(event, p.NodeProgress):
            done = max(0, len(self.started_nodes) - 1)
            part = event.value / event.max if event.max > 0 else 0.0
            fraction = self._advance((done + part) / self.nodes_to_run)
            await x.emit(ev.Progress(event.node_id, event.value, event.max, fraction))
        elif isinstance(event, p.PreviewImage):
            await self._preview(event)
        elif isinstance(event, p.NodeOutput):
            return await self._output(event)
        elif isinstance(event, p.FINAL_PROMPT_EVENTS):
            await x.emit(self._terminal(event))
            return True
        return False

    async def _node_started(self, node_id: str) -> None:
        if node_id in self.started_nodes:
            return
        fraction = self._advance(len(self.started_nodes) / self.nodes_to_run)
        self.started_nodes.append(node_id)
        node = self.workflow.nodes.get(node_id)
        node_type = node.class_type if node else ""
        await self.execution.emit(
            ev.NodeStarted(node_id, node_type, self.titles.get(node_id, node_type), fraction)
        )

    async def _preview(self, event: p.PreviewImage) -> None:
        request = self.execution.request
        moment = time.monotonic()
        if not request.previews or moment - self.last_preview < request.preview_interval:
            return
        self.last_preview = moment
        node_id = event.node_id or (self.started_nodes[-1] if self.started_nodes else "")
        await self.execution.emit(ev.Preview(node_id, event.mime_type, event.image))

    async def _output(self, event: p.NodeOutput) -> bool:
        include_temp = self.execution.request.include_temp_outputs
        stored: list[ev.Artifact] = []
        for file in event.files:
            if file.type == "temp" and not include_temp:
                continue
            try:
                stored.append(await self._store(event.node_id, file))
            except errors.DomainError as exc:
                log.warning("execution.output_failed", execution_id=self.execution.request.execution_id)
                await self.execution.emit(
                    ev.Failed(
                        ev.FailureReason.OUTPUT_STORAGE_FAILED,
                        ev.trim_message(f"output {file.filename} of node {event.node_id}: {exc.message}"),
                        self.execution.timing(),
                        node_id=event.node_id,
                        node_type=self._type(event.node_id),
                    )
                )
                return True
        if stored:
            self.artifacts.extend(stored)
            await self.execution.emit(ev.Output(event.node_id, tuple(stored)))
        return False

    async def _store(self, node_id: str, file: p.OutputFile) -> ev.Artifact:
        data, content_type = await self.member.client.view(file)
        info = self.probe(data)
        key = f"{self.execution.request.output_prefix}/{node_id}/{file.filename}"
        content_type = info.content_type if info else (content_type or "application/octet-stream")
        obj = await self.storage.put(key, data, content_type)
        return ev.Artifact(
            storage_key=obj.key,
            uri=obj.uri,
            content_type=content_type,
            size_bytes=obj.size,
            sha256=obj.sha256,
            width=info.width if info else 0,
            height=info.height if info else 0,
            node_id=node_id,
            filename=file.filename,
            temporary=file.type == "temp",
        )

    def _type(self, node_id: str) -> str:
        node = self.workflow.nodes.get(node_id)
        return node.class_type if node else ""

    def _terminal(self, event: p.PromptEvent) -> ev.Event:
        x = self.execution
        timing = x.timing()
        if isinstance(event, p.PromptSucceeded):
            return ev.Succeeded(tuple(self.artifacts), timing)
        if isinstance(event, p.PromptFailed):
            text = f"{event.exception_type} {event.message}".lower()
            oom = any(marker in text for marker in OOM_MARKERS)
            return ev.Failed(
                ev.FailureReason.OUT_OF_MEMORY if oom else ev.FailureReason.NODE_EXCEPTION,
                ev.trim_message(event.message),
                timing,
                node_id=event.node_id,
                node_type=event.node_type or self._type(event.node_id),
                exception_type=event.exception_type,
                traceback=ev.trim_traceback(list(event.traceback)),
            )
        if isinstance(event, (p.PromptInterrupted, p.PromptRemoved)):
            reason = x.cancel_reason or ev.CancelReason.INTERRUPTED
            node_id = event.node_id if isinstance(event, p.PromptInterrupted) else ""
            node_type = event.node_type if isinstance(event, p.PromptInterrupted) else ""
            return ev.Cancelled(reason, timing, node_id, node_type or self._type(node_id))
        message = event.message if isinstance(event, p.PromptLost) else "the backend lost the prompt"
        return ev.Failed(ev.FailureReason.BACKEND_LOST, ev.trim_message(message), timing)
