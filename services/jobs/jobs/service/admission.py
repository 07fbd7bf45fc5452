"""CreateJob: idempotency, validation, usage reservation, and the job queued exactly once.

A job is written as ADMITTING before usage is reserved, and becomes QUEUED only after; a replica that dies in
between leaves an ADMITTING row that a retry with the same key resumes, or that the reaper releases and
removes. So a reservation never outlives its job, and no job runs unpaid.

Concurrent admissions share those steps (see `servicekit.batching`): one insert, one BatchReserveUsage and
one queueing update for all the jobs that arrived while the previous batch was being written. Each job is
still judged on its own: one over quota is refused alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from jobs.domain import requests, workflow
from jobs.domain.ids import uuid7
from jobs.domain.jobs import Job, JobState, Source, next_sequence
from jobs.domain.presets import Binding, image_bindings, resolve_parameters
from jobs.domain.requests import NewJob
from jobs.service.ports import Billing, ExecutionSpec, JobStore, Notifier, Validator
from jobs.service.presets import PresetService
from servicekit import errors
from servicekit.batching import Batcher
from servicekit.logging import get_logger

log = get_logger("jobs.admission")
MAX_BATCH = 64


@dataclass(frozen=True)
class _Pending:
    """A job to admit: a new one with its workflow, or (spec None) one already written by an earlier try."""

    job: Job
    fingerprint: str = ""
    spec: ExecutionSpec | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class Admission:
    """Turns a NewJob into a QUEUED job with its usage reserved."""

    def __init__(
        self,
        store: JobStore,
        presets: PresetService,
        validator: Validator,
        billing: Billing,
        notifier: Notifier,
        webhook_hosts: frozenset[str] = frozenset(),
        clock: Callable[[], datetime] = _now,
        has_webhook_secret: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.store = store
        self.presets = presets
        self.validator = validator
        self.billing = billing
        self.notifier = notifier
        self.webhook_hosts = webhook_hosts
        self.clock = clock
        self.has_webhook_secret = has_webhook_secret
        self.batches: Batcher[_Pending, Job | None] = Batcher(self._admit_batch, MAX_BATCH)

    async def create(self, request: NewJob) -> Job:
        """The new job, or the original one for a replayed idempotency key.

        A replay is found when the insert meets the key, so a first request costs no lookup; a request that
        cannot be planned (invalid, or inference unreachable) still finds the job its key made earlier.
        """
        now = self.clock()
        requests.check(request, now, self.webhook_hosts)
        await self._check_webhook_secret(request)
        fingerprint = request.fingerprint()
        try:
            source, spec = await self._plan(request)
        except errors.DomainError:
            if request.request_id and (earlier := await self._replay(request, fingerprint)) is not None:
                return earlier
            raise
        job = Job(
            id=uuid7(),
            owner=request.owner,
            state=JobState.ADMITTING,
            priority=request.priority,
            source=source,
            inputs=request.inputs,
            labels=request.labels,
            webhook=request.webhook,
            deadline=request.deadline,
            request_id=request.request_id,
            create_time=now,
            update_time=now,
            sequence=next_sequence(0, now),
        )
        admitted = await self._admit(_Pending(job, fingerprint, spec))
        if admitted is not None:
            return admitted
        earlier = await self._replay(request, fingerprint)
        if earlier is None:
            raise errors.Aborted(
                "a concurrent request with the same key changed; retry", reason="IDEMPOTENCY_RACE"
            )
        return earlier

    async def _check_webhook_secret(self, request: NewJob) -> None:
        """A webhook that could not be signed is refused up front rather than failing every delivery."""
        if request.webhook is None or self.has_webhook_secret is None:
            return
        if not await self.has_webhook_secret(request.owner):
            raise errors.FailedPrecondition(
                "the account has no webhook signing secret; create one with RotateWebhookSecret",
                reason="WEBHOOK_SECRET_NOT_CONFIGURED",
                metadata={"owner": request.owner},
            )

    async def _replay(self, request: NewJob, fingerprint: str) -> Job | None:
        found = await self.store.find_by_request(request.owner, request.request_id)
        if found is None:
            return None
        job, earlier_fingerprint = found
        if earlier_fingerprint != fingerprint:
            raise errors.AlreadyExists(
                f"request_id {request.request_id!r} was used for a different request",
                reason="IDEMPOTENCY_KEY_REUSED",
                metadata={"job": job.name},
            )
        if job.state is JobState.ADMITTING:
            return await self._admit(_Pending(job))
        return await self.store.get(request.owner, job.id) or job

    async def _admit(self, pending: _Pending) -> Job | None:
        """The job queued (or as it is now); None when a new job's id or key was already taken."""
        admitted = await self.batches.submit(pending)
        if admitted is not None and admitted.state is JobState.QUEUED:
            log.info("job.queued", job=admitted.name, owner=admitted.owner)
        return admitted

    async def _admit_batch(self, batch: list[_Pending]) -> list[Job | BaseException | None]:
        """Writes the new jobs, reserves usage for all, queues those that got it; an outcome per job."""
        new = [(p.job, p.fingerprint, p.spec) for p in batch if p.spec is not None]
        written = await self.store.insert(new) if new else set()
        admitting = [p.job for p in batch if p.spec is None or p.job.id in written]
        refusals = await self.billing.reserve([(j.owner, j.name) for j in admitting]) if admitting else []
        outcomes: dict[str, Job | BaseException] = {}
        for job, refusal in zip(admitting, refusals, strict=True):
            if isinstance(refusal, errors.ResourceExhausted):
                await self.store.discard(job.id)
            if refusal is not None:
                outcomes[job.id] = refusal
        now = self.clock()
        reserved = [
            replace(j, state=JobState.QUEUED, update_time=now, sequence=next_sequence(j.sequence, now))
            for j in admitting
            if j.id not in outcomes
        ]
        queued = await self.store.enqueue(reserved) if reserved else {}
        if queued:
            # No snapshots to send: a watcher can only have started once its job was visible, that is, queued,
            # and it reads the database after subscribing.
            await self.notifier.announce_queued()
        for job in reserved:
            outcomes[job.id] = queued.get(job.id) or await self._abandoned(job)
        return [outcomes.get(p.job.id) for p in batch]

    async def _abandoned(self, job: Job) -> Job | BaseException:
        """A job that was no longer ADMITTING when it was to be queued: as it is now, if it still exists."""
        current = await self.store.get(job.owner, job.id)
        if current is None:
            return errors.Aborted("the admission was abandoned; retry", reason="ADMISSION_ABANDONED")
        return current

    async def _plan(self, request: NewJob) -> tuple[Source, ExecutionSpec]:
        """The source summary and the bound workflow, validated against the backends' node catalogs."""
        triples = [(i.name, i.node_id, i.storage_key) for i in request.inputs]
        if request.preset:
            preset = self.presets.get(request.preset, request.preset_version)
            parameters = resolve_parameters(preset, request.parameters)
            graph = json_copy(preset.workflow)
            for parameter in preset.parameters:
                if parameter.name in parameters:
                    for binding in parameter.bindings:
                        workflow.set_input(
                            graph, binding.node_id, binding.input_name, parameters[parameter.name]
                        )
            graph, files = self._bind_preset_images(graph, image_bindings(preset), request)
            source = Source(
                preset=f"presets/{preset.name}", preset_version=preset.version, parameters=parameters
            )
        else:
            graph = workflow.parse(request.workflow_json)
            graph, bindings = workflow.bind_inputs(graph, triples)
            files = tuple((b.filename, b.storage_key) for b in bindings)
            source = Source(
                workflow_sha256=workflow.sha256(request.workflow_json),
                node_count=len(graph),
                node_types=workflow.node_types(graph),
            )
        text = workflow.dumps(graph)
        verdict = await self.validator.validate(text, [f for f, _ in files])
        if verdict.violations:
            raise errors.InvalidArgument(
                f"the workflow is not valid: {verdict.violations[0][1]}",
                reason="WORKFLOW_INVALID",
                violations=tuple(errors.FieldViolation(f, m) for f, m in verdict.violations),
            )
        if not request.preset:
            source = replace(source, output_node_ids=verdict.output_node_ids)
        return source, ExecutionSpec(text, files)

    @staticmethod
    def _bind_preset_images(
        graph: workflow.Workflow, images: dict[str, tuple[Binding, ...]], request: NewJob
    ) -> tuple[workflow.Workflow, tuple[tuple[str, str], ...]]:
        given = {i.name: i for i in request.inputs}
        for index, item in enumerate(request.inputs):
            if item.name not in images:
                raise errors.InvalidArgument(
                    f"the preset has no image input {item.name!r}",
                    reason="INPUT_INVALID",
                    violations=(errors.FieldViolation(f"inputs[{index}].name", f"one of {sorted(images)}"),),
                )
        missing = [name for name in images if name not in given]
        if missing:
            raise errors.InvalidArgument(
                f"the preset needs the image input(s) {', '.join(missing)}",
                reason="INPUT_MISSING",
                violations=tuple(
                    errors.FieldViolation("inputs", f"add an input named {n!r}") for n in missing
                ),
            )
        files = []
        for index, (name, bindings) in enumerate(sorted(images.items())):
            filename = f"{name}_{index}{workflow.extension(given[name].storage_key)}"
            for binding in bindings:
                workflow.set_input(graph, binding.node_id, binding.input_name, filename)
            files.append((filename, given[name].storage_key))
        return graph, tuple(files)


def json_copy(graph: dict[str, object]) -> workflow.Workflow:
    """A deep copy of a workflow graph."""
    return workflow.parse(workflow.dumps(graph))
