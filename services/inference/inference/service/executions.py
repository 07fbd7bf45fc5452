"""The Execute and Cancel use cases: validate, wait for a backend slot, copy inputs, submit, follow."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from inference.domain import events as ev
from inference.domain import prompts as p
from inference.domain.catalog import Catalog
from inference.domain.executions import ExecutionRequest, check_execution_id, check_request
from inference.domain.violations import invalid_workflow
from inference.domain.workflow import Workflow
from inference.service.pool import Member, Pool
from inference.service.ports import ImageProbe, Storage
from inference.service.record import Execution, now
from inference.service.tracking import Tracker
from inference.service.validation import Validator
from servicekit import errors
from servicekit.errors import FieldViolation
from servicekit.logging import get_logger

log = get_logger("inference.executions")
KEEP_FINISHED_SECONDS = 15 * 60
MAX_FINISHED = 5000  # exceeded by at most a second's worth between prunes
PRUNE_INTERVAL_SECONDS = 1.0
HASH_ON_LOOP_BYTES = 256 * 1024  # larger inputs are hashed in a thread (a 25 MB photo takes 15 ms or more)


@dataclass(frozen=True)
class Prepared:
    """A request that passed every check: its workflow, catalog and input bytes."""

    workflow: Workflow
    catalog: Catalog
    inputs: dict[str, tuple[bytes, str, str]]  # filename -> (bytes, content type, upload name)


class CancelOutcome:
    """What Cancel did."""

    REMOVED_FROM_QUEUE = "REMOVED_FROM_QUEUE"
    INTERRUPT_REQUESTED = "INTERRUPT_REQUESTED"
    ALREADY_FINISHED = "ALREADY_FINISHED"


class Executions:
    """Every execution this replica runs or has recently finished."""

    def __init__(self, pool: Pool, validator: Validator, storage: Storage, probe: ImageProbe) -> None:
        self.pool = pool
        self.validator = validator
        self.storage = storage
        self.probe = probe
        self._by_id: dict[str, Execution] = {}
        self._pruned_at = float("-inf")

    async def close(self) -> None:
        """Stops following executions (they keep running on their backends)."""
        for execution in self._by_id.values():
            if execution.task is not None:
                execution.task.cancel()

    # -- Execute -------------------------------------------------------------------------------------------

    async def execute(self, request: ExecutionRequest) -> AsyncIterator[ev.Event]:
        """Starts (or attaches to) an execution and returns its event stream.

        The stream raises a problem found before `accepted` (inputs, conflict, no backend) as its error.
        """
        check_request(request)
        # Look up and register with no await in between, so a concurrent call with this id finds this
        # execution; the slow part of the start (inputs, search of the backends) runs in its own task.
        self._prune()
        existing = self._by_id.get(request.execution_id)
        if existing is not None and existing.error is None:
            if existing.fingerprint != request.fingerprint():
                raise _conflict(request.execution_id)
            return existing.follow(attached=True)
        execution = Execution(request, p.prompt_id_for(request.execution_id), request.fingerprint())
        self._by_id[request.execution_id] = execution
        execution.task = asyncio.create_task(self._start(execution))
        return execution.follow(attached=False)

    async def _start(self, execution: Execution) -> None:
        """Reads and checks the inputs, then follows a prompt an earlier call submitted or runs a new one."""
        try:
            prepared = await self._prepare(execution.request)
            member = await self._find_submitted(execution, prepared)
        except errors.DomainError as exc:
            await self._fail_start(execution, exc)
            return
        except Exception:
            log.exception("execution.crashed", execution_id=execution.request.execution_id)
            await self._fail_start(execution, errors.Internal("internal error", reason="INTERNAL"))
            return
        if member is None:
            await self._run(execution, prepared)
        else:
            await self._attach(execution, prepared, member)

    async def _fail_start(self, execution: Execution, error: errors.DomainError) -> None:
        """Fails the execution for every caller following it and forgets it, so a retry starts afresh."""
        self._by_id.pop(execution.request.execution_id, None)
        await execution.fail_before_accepted(error)

    async def _find_submitted(self, execution: Execution, prepared: Prepared) -> Member | None:
        """The backend holding a prompt an earlier call submitted under this id; a conflict if it differs."""
        if execution.request.new_execution:
            return None  # only an earlier call can have put this id's prompt on a backend
        found = await self._find_on_backends(execution.prompt_id)
        if found is None:
            return None
        member, graph = found
        if graph != self._rewrite(prepared, execution.prompt_id):
            raise _conflict(execution.request.execution_id)
        return member

    def _prune(self) -> None:
        """Forgets old finished executions, at most once a second (it sorts them all: 1.5 ms at 5,000)."""
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._pruned_at < PRUNE_INTERVAL_SECONDS:
            return
        self._pruned_at = loop_time
        finished = [(x.finished_at, k) for k, x in self._by_id.items() if x.finished_at is not None]
        finished.sort()
        excess = len(finished) - MAX_FINISHED
        for index, (at, key) in enumerate(finished):
            if index < excess or loop_time - (at or 0) > KEEP_FINISHED_SECONDS:
                del self._by_id[key]

    async def _prepare(self, request: ExecutionRequest) -> Prepared:
        filenames = [i.filename for i in request.inputs]
        workflow, catalog, report = self.validator.check(request.workflow_json, request.backend_id, filenames)
        if not report.valid:
            raise invalid_workflow(report.violations)
        inputs: dict[str, tuple[bytes, str, str]] = {}
        for index, item in enumerate(request.inputs):
            data = await self.storage.get(item.storage_key)
            info = self.probe(data)
            if info is None:
                raise errors.InvalidArgument(
                    f"inputs[{index}]: the object {item.storage_key!r} is not an image (PNG, JPEG, WebP, …)",
                    reason="INPUT_NOT_IMAGE",
                    metadata={"storage_key": item.storage_key[:200]},
                    violations=(
                        FieldViolation(f"inputs[{index}].storage_key", "the object is not an image"),
                    ),
                )
            # Content-addressed names: identical bytes share one file on a backend, which no upload rewrites.
            digest = (
                hashlib.sha256(data)
                if len(data) <= HASH_ON_LOOP_BYTES
                else await asyncio.to_thread(hashlib.sha256, data)
            )
            name = digest.hexdigest()[:32] + info.extension
            inputs[item.filename] = (data, info.content_type, name)
        return Prepared(workflow, catalog, inputs)

    def _rewrite(
        self, prepared: Prepared, prompt_id: str, uploaded: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The graph as submitted: inputs under their uploaded names, outputs under a per-prompt folder.

        `uploaded` holds the name the backend gave each input file; without it, the content-addressed
        names, which the backend keeps unless a file of that name already holds other bytes.
        The per-prompt output folder also defeats ComfyUI's cache of output nodes, which would otherwise
        re-send `executed` with an earlier run's file names for an identical workflow.
        """
        names = uploaded or {filename: name for filename, (_, _, name) in prepared.inputs.items()}
        graph = copy.deepcopy(dict(prepared.workflow.raw))
        for node_id, node in prepared.workflow.nodes.items():
            spec = prepared.catalog.get(node.class_type)
            if spec is None:
                continue
            inputs = graph[node_id].setdefault("inputs", {})
            for name, value in node.inputs.items():
                declared = spec.input(name)
                if declared is None or not isinstance(value, str):
                    continue
                if declared.is_upload and value in names:
                    inputs[name] = names[value]
                elif name == "filename_prefix" and spec.output_node:
                    inputs[name] = f"api/{prompt_id}/{value}"
        return graph

    def _titles(self, prepared: Prepared) -> dict[str, str]:
        titles = {}
        for node_id, node in prepared.workflow.nodes.items():
            spec = prepared.catalog.get(node.class_type)
            titles[node_id] = node.title or (spec.display_name if spec else node.class_type)
        return titles

    async def _run(self, execution: Execution, prepared: Prepared) -> None:
        request = execution.request
        checkpoints = (
            [request.checkpoint_hint] if request.checkpoint_hint else prepared.workflow.checkpoints()
        )
        member: Member | None = None
        deadline = self._deadline_timer(execution)
        try:
            member = await self.pool.acquire(
                execution.prompt_id, request.execution_id, checkpoints, request.backend_id
            )
            if execution.cancel_reason is not None:
                await execution.emit(ev.Accepted(member.state.name, execution.prompt_id))
                await execution.emit(ev.Cancelled(execution.cancel_reason, execution.timing()))
                return
            await self._submit(execution, prepared, member)
        except errors.DomainError as exc:
            await self._fail(execution, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("execution.crashed", execution_id=request.execution_id)
            await self._fail(execution, errors.Internal("internal error", reason="INTERNAL"))
        finally:
            if deadline is not None:
                deadline.cancel()
            if member is not None:
                member.client.unwatch(execution.prompt_id)
                await self.pool.release(member, execution.prompt_id)

    async def _fail(self, execution: Execution, exc: errors.DomainError) -> None:
        if not execution.accepted:
            await execution.fail_before_accepted(exc)
            return
        reason = (
            ev.FailureReason.BACKEND_LOST
            if isinstance(exc, errors.Unavailable)
            else ev.FailureReason.INTERNAL
        )
        await execution.emit(ev.Failed(reason, ev.trim_message(exc.message), execution.timing()))

    async def _submit(self, execution: Execution, prepared: Prepared, member: Member) -> None:
        request = execution.request
        client = member.client
        uploaded = {
            filename: await client.upload(name, data, content_type)
            for filename, (data, content_type, name) in prepared.inputs.items()
        }
        watch = client.watch(execution.prompt_id)
        execution.submit_time = now()
        graph = self._rewrite(prepared, execution.prompt_id, uploaded)
        submission = await client.submit(execution.prompt_id, graph, request.previews)
        execution.submitted = True
        execution.backend_id = member.state.backend_id
        await execution.emit(ev.Accepted(member.state.name, execution.prompt_id))
        log.info("execution.submitted", execution_id=request.execution_id, backend=member.state.name)
        if submission.rejected:
            # Partial acceptance: ComfyUI would silently drop the invalid branches, so stop the rest too.
            await self._stop_on_backend(member, execution.prompt_id)
            problems = "; ".join(f"node {v.node_id}: {v.message}" for v in submission.rejected)
            await execution.emit(
                ev.Failed(
                    ev.FailureReason.WORKFLOW_REJECTED,
                    ev.trim_message(f"the backend accepted only part of the workflow: {problems}"),
                    execution.timing(),
                    node_id=submission.rejected[0].node_id,
                    node_type=submission.rejected[0].node_type,
                )
            )
            return
        await self._follow(execution, prepared, member, watch)

    async def _follow(self, execution: Execution, prepared: Prepared, member: Member, watch: Any) -> None:
        tracker = Tracker(
            execution, member, prepared.workflow, self._titles(prepared), self.storage, self.probe
        )
        async for event in watch:
            if isinstance(event, p.FINAL_PROMPT_EVENTS):
                # The backend slot frees as soon as the prompt ends, before the last outputs are stored.
                await self.pool.release(member, execution.prompt_id)
            if await tracker.handle(event):
                break
        terminal = execution.terminal
        log.info(
            "execution.finished",
            execution_id=execution.request.execution_id,
            outcome=type(terminal).__name__ if terminal else "unknown",
        )

    async def _attach(self, execution: Execution, prepared: Prepared, member: Member) -> None:
        """Follows a prompt another replica (or an earlier life of this one) submitted."""
        execution.submitted = True
        execution.backend_id = member.state.backend_id
        member.state.in_flight.setdefault(execution.prompt_id, execution.request.execution_id)
        watch = member.client.watch(execution.prompt_id)
        try:
            await execution.emit(ev.Accepted(member.state.name, execution.prompt_id, attached=True))
            state, position, events = await member.client.locate(execution.prompt_id)
            replay = Tracker(
                execution, member, prepared.workflow, self._titles(prepared), self.storage, self.probe
            )
            if state == "finished":
                for event in events:
                    if await replay.handle(event):
                        return
            if position is not None:
                await execution.emit(ev.Queued(position))
            await self._follow(execution, prepared, member, watch)
        except errors.DomainError as exc:
            await self._fail(execution, exc)
        finally:
            member.client.unwatch(execution.prompt_id)
            await self.pool.release(member, execution.prompt_id)

    def _deadline_timer(self, execution: Execution) -> asyncio.Task[None] | None:
        deadline = execution.request.deadline
        if deadline is None:
            return None

        async def expire() -> None:
            await asyncio.sleep(max(0.0, (deadline - now()).total_seconds()))
            with contextlib.suppress(errors.DomainError):
                await self._cancel(execution, ev.CancelReason.DEADLINE_EXCEEDED)

        return asyncio.create_task(expire())

    async def _find_on_backends(self, prompt_id: str) -> tuple[Member, dict[str, Any]] | None:
        """The backend already holding `prompt_id` (queued, running or in its history), if any."""
        members = [m for m in self.pool.sorted_members() if m.client.connected]

        async def look(member: Member) -> dict[str, Any] | None:
            try:
                return await member.client.find_workflow(prompt_id)
            except errors.Unavailable:
                return None

        graphs = await asyncio.gather(*(look(m) for m in members))
        for member, graph in zip(members, graphs, strict=True):
            if graph is not None:
                return member, graph
        return None

    # -- Cancel --------------------------------------------------------------------------------------------

    async def cancel(self, execution_id: str) -> tuple[str, str]:
        """Cancels an execution; returns (outcome, backend name)."""
        check_execution_id(execution_id)
        execution = self._by_id.get(execution_id)
        if execution is not None and execution.error is None:
            return await self._cancel(execution, ev.CancelReason.REQUESTED)
        prompt_id = p.prompt_id_for(execution_id)
        found = await self._find_on_backends(prompt_id)
        if found is None:
            raise errors.NotFound(
                f"no backend knows the execution {execution_id!r}",
                reason="EXECUTION_NOT_FOUND",
                metadata={"execution_id": execution_id},
            )
        member, _ = found
        return await self._cancel_on_backend(member, prompt_id), member.state.name

    async def _cancel(self, execution: Execution, reason: ev.CancelReason) -> tuple[str, str]:
        backend = f"backends/{execution.backend_id}" if execution.backend_id else ""
        if execution.terminal is not None:
            return CancelOutcome.ALREADY_FINISHED, backend
        execution.cancel_reason = execution.cancel_reason or reason
        if not execution.submitted:
            if execution.task is not None:
                execution.task.cancel()
            await execution.emit(ev.Accepted(backend, execution.prompt_id))
            await execution.emit(ev.Cancelled(execution.cancel_reason, execution.timing()))
            return CancelOutcome.REMOVED_FROM_QUEUE, backend
        member = self.pool.get(execution.backend_id)
        outcome = await self._cancel_on_backend(member, execution.prompt_id)
        if outcome == CancelOutcome.REMOVED_FROM_QUEUE and execution.terminal is None:
            if execution.task is not None:
                execution.task.cancel()
            await execution.emit(ev.Cancelled(execution.cancel_reason, execution.timing()))
            member.client.unwatch(execution.prompt_id)
            await self.pool.release(member, execution.prompt_id)
        return outcome, backend

    async def _cancel_on_backend(self, member: Member, prompt_id: str) -> str:
        client = member.client
        state, _, _ = await client.locate(prompt_id)
        if state == "pending":
            await client.delete_queued(prompt_id)
            state, _, _ = await client.locate(prompt_id)
            if state == "unknown":
                return CancelOutcome.REMOVED_FROM_QUEUE
        if state == "running":
            await client.interrupt(prompt_id)
            return CancelOutcome.INTERRUPT_REQUESTED
        if state == "unknown":
            return CancelOutcome.REMOVED_FROM_QUEUE
        return CancelOutcome.ALREADY_FINISHED

    async def _stop_on_backend(self, member: Member, prompt_id: str) -> None:
        with contextlib.suppress(errors.DomainError):
            await member.client.delete_queued(prompt_id)
            await member.client.interrupt(prompt_id)


def _conflict(execution_id: str) -> errors.AlreadyExists:
    return errors.AlreadyExists(
        f"the execution {execution_id!r} exists with another workflow, inputs or output prefix",
        reason="EXECUTION_ID_CONFLICT",
        metadata={"execution_id": execution_id},
    )
