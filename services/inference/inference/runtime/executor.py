"""Runs one prompt: caching, execution order, node calls on a worker thread, and the message sequence
(execution_start, execution_cached, progress_state/executing/executed per node, then execution_success,
execution_error or execution_interrupted) exactly as capture 01-06 show it."""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from inference.runtime import protocol
from inference.runtime.cache import CacheEntry, OutputCache
from inference.runtime.files import DataDirs
from inference.runtime.graph import ExecutionList
from inference.runtime.hub import Hub
from inference.runtime.nodes.base import REGISTRY, InterruptedError_, NodeContext, Result
from inference.runtime.progress import ProgressState
from inference.runtime.queue import QueueItem
from inference.runtime.validation import class_inputs


class NodeFailure(Exception):
    def __init__(self, node_id: str, details: dict[str, Any]) -> None:
        super().__init__(node_id)
        self.node_id = node_id
        self.details = details


class PromptExecutor:
    def __init__(self, hub: Hub, dirs: DataDirs) -> None:
        self.hub = hub
        self.dirs = dirs
        self.cache = OutputCache()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.interrupt = threading.Event()
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.status_messages: list[tuple[str, dict[str, Any]]] = []
        self.success = True
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runtime-node")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def reset(self) -> None:
        """POST /free {"free_memory": true}: forget every cached result."""
        self.cache.clear()
        self.objects.clear()

    def _message(self, event: str, data: dict[str, Any], broadcast: bool) -> None:
        data = {**data, "timestamp": protocol.now_ms()}
        self.status_messages.append((event, data))
        if self.client_id is not None or broadcast:
            self.hub.send(event, data, self.client_id)

    async def execute(self, item: QueueItem) -> dict[str, Any]:
        prompt, prompt_id = item.prompt, item.prompt_id
        extra = {**item.extra_data, **item.sensitive}
        self.interrupt.clear()
        self.client_id = extra.get("client_id")
        self.status_messages = []
        self.success = True
        self._message("execution_start", {"prompt_id": prompt_id}, broadcast=False)
        progress = ProgressState(self.hub, prompt_id, self.client_id)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.cache.set_prompt, prompt, self.dirs)
        self._forget_objects(prompt)
        cached = [node_id for node_id in prompt if self.cache.get(node_id) is not None]
        self._message("execution_cached", {"nodes": cached, "prompt_id": prompt_id}, broadcast=False)
        run = _Run(self, prompt, prompt_id, extra, progress)
        await run.go(item.outputs)
        self.last_node_id = None
        return {
            "outputs": {k: v["output"] for k, v in run.ui.items()},
            "meta": {k: v["meta"] for k, v in run.ui.items()},
        }

    def _forget_objects(self, prompt: dict[str, Any]) -> None:
        for key in list(self.objects):
            if key[0] not in prompt or prompt[key[0]]["class_type"] != key[1]:
                del self.objects[key]


class _Run:
    """One prompt's execution state."""

    def __init__(
        self,
        executor: PromptExecutor,
        prompt: dict[str, Any],
        prompt_id: str,
        extra: dict[str, Any],
        progress: ProgressState,
    ) -> None:
        self.ex = executor
        self.prompt = prompt
        self.prompt_id = prompt_id
        self.extra = extra
        self.progress = progress
        self.executed: dict[str, None] = {}
        self.ui: dict[str, dict[str, Any]] = {}

    async def go(self, outputs: list[str]) -> None:
        cache = self.ex.cache
        order = ExecutionList(
            self.prompt,
            lambda n: cache.get(n) is not None,
            lambda n: REGISTRY[self.prompt[n]["class_type"]].is_output,
        )
        for output in outputs:
            order.add_node(output)
        while not order.is_empty():
            node_id = order.next_node()
            if node_id is None:
                break
            try:
                await self._execute(node_id)
            except InterruptedError_:
                self._interrupted(node_id)
                return
            except NodeFailure as failure:
                self._failed(failure)
                return
            order.complete(node_id)
        self.ex._message("execution_success", {"prompt_id": self.prompt_id}, broadcast=False)

    async def _execute(self, node_id: str) -> None:
        ex, client = self.ex, self.ex.client_id
        class_type = self.prompt[node_id]["class_type"]
        cached = ex.cache.get(node_id)
        if cached is not None:
            if cached.ui is not None:
                self.ui[node_id] = cached.ui
            if client is not None:
                output = (cached.ui or {}).get("output")
                ex.hub.send(
                    "executed",
                    {"node": node_id, "display_node": node_id, "output": output, "prompt_id": self.prompt_id},
                    client,
                )
            self.progress.finish(node_id)
            return
        self.progress.start(node_id)
        definition = REGISTRY[class_type]
        arguments = self._arguments(node_id, definition)
        if client is not None:
            ex.last_node_id = node_id
            ex.hub.send(
                "executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id}, client
            )
        if ex.interrupt.is_set():
            raise InterruptedError_()
        context = self._context(node_id, class_type)
        loop = asyncio.get_running_loop()
        try:
            result: Result = await loop.run_in_executor(ex._pool, lambda: definition.fn(context, **arguments))
        except InterruptedError_:
            raise
        except Exception as err:
            raise NodeFailure(node_id, self._error_details(err, arguments, node_id, definition)) from err
        entry_ui = None
        if result.ui:
            entry_ui = {
                "meta": {
                    "node_id": node_id,
                    "display_node": node_id,
                    "parent_node": None,
                    "real_node_id": node_id,
                },
                "output": result.ui,
            }
            self.ui[node_id] = entry_ui
            if client is not None:
                ex.hub.send(
                    "executed",
                    {
                        "node": node_id,
                        "display_node": node_id,
                        "output": result.ui,
                        "prompt_id": self.prompt_id,
                    },
                    client,
                )
        ex.cache.set(node_id, CacheEntry(result.outputs, entry_ui))
        self.progress.finish(node_id)
        self.executed[node_id] = None

    def _arguments(self, node_id: str, definition: Any) -> dict[str, Any]:
        inputs = self.prompt[node_id]["inputs"]
        arguments: dict[str, Any] = {}
        for name, _category, _kind, _options in class_inputs(definition, inputs):
            if name not in inputs:
                continue
            value = inputs[name]
            if isinstance(value, list) and len(value) == 2:
                upstream = self.ex.cache.get(str(value[0]))
                arguments[name] = None if upstream is None else upstream.outputs[value[1]]
            else:
                arguments[name] = value
        return arguments

    def _context(self, node_id: str, class_type: str) -> NodeContext:
        ex = self.ex
        state = ex.objects.setdefault((node_id, class_type), {})

        def check() -> None:
            if ex.interrupt.is_set():
                raise InterruptedError_()

        def report(value: int, total: int, preview: tuple[str, Any] | None) -> None:
            check()
            self.progress.update_from_thread(node_id, value, total, preview)

        def text(message: str) -> None:
            ex.hub.send_threadsafe("bytes", protocol.text_frame(node_id, message), None)

        return NodeContext(
            node_id=node_id,
            dirs=ex.dirs,
            prompt=self.prompt,
            extra_pnginfo=self.extra.get("extra_pnginfo"),
            state=state,
            report_progress=report,
            report_text=text,
            check_interrupt=check,
        )

    def _error_details(
        self, err: Exception, arguments: dict[str, Any], node_id: str, definition: Any
    ) -> dict[str, Any]:
        typ = type(err)
        name = typ.__qualname__ if typ.__module__ == "builtins" else f"{typ.__module__}.{typ.__qualname__}"
        shown = {k: [format_value(v)] for k, v in arguments.items()}
        hidden = {
            "PROMPT": self.prompt,
            "EXTRA_PNGINFO": self.extra.get("extra_pnginfo"),
            "UNIQUE_ID": node_id,
        }
        for input_name, kind in definition.spec["input"].get("hidden", {}).items():
            kind = kind[0] if isinstance(kind, list) else kind
            if kind in hidden:
                shown[input_name] = [format_value(hidden[kind])]
        return {
            "exception_message": f"{err}\n",
            "exception_type": name,
            "traceback": traceback.format_tb(sys.exc_info()[2]),
            "current_inputs": shown,
        }

    def _failed(self, failure: NodeFailure) -> None:
        self.ex.success = False
        message = {
            "prompt_id": self.prompt_id,
            "node_id": failure.node_id,
            "node_type": self.prompt[failure.node_id]["class_type"],
            "executed": list(self.executed),
            **failure.details,
            "current_outputs": list(self.prompt),
        }
        self.ex._message("execution_error", message, broadcast=False)

    def _interrupted(self, node_id: str) -> None:
        self.ex.success = False
        message = {
            "prompt_id": self.prompt_id,
            "node_id": node_id,
            "node_type": self.prompt[node_id]["class_type"],
            "executed": list(self.executed),
        }
        self.ex._message("execution_interrupted", message, broadcast=True)


def format_value(value: Any) -> Any:
    """How a node input appears in execution_error.current_inputs: scalars as is, the rest as text."""
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    if isinstance(value, np.ndarray):
        return (
            "tensor(" + np.array2string(value, threshold=64, edgeitems=3, precision=4, separator=", ") + ")"
        )
    return str(value)
