"""`job.progress` webhooks from the dispatcher: opt-in, throttled to one per job every 5 seconds, and
written to the outbox together with the progress they describe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs.domain import effects
from jobs.domain.effects import OutboxMessage
from jobs.domain.jobs import Job, JobState, Priority, Progress, Source, Webhook
from jobs.service.dispatch import Attempt, Dispatcher, DispatchSettings
from jobs.service.ports import ExecutionEvent

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class SavingStore:
    """Keeps what the dispatcher saves: (job, outbox messages)."""

    saved: list[tuple[Job, list[OutboxMessage]]] = field(default_factory=list)

    async def save(
        self, job: Job, expected: JobState, messages: Sequence[OutboxMessage] = (), **_: Any
    ) -> bool:
        self.saved.append((job, list(messages)))
        return True


class QuietNotifier:
    async def publish(self, job: Job) -> None:
        pass


def running(events: tuple[str, ...] | None) -> Job:
    return Job(
        id="01a2b3c4-0000-7000-8000-000000000000",
        owner="users/alice",
        state=JobState.RUNNING,
        priority=Priority.NORMAL,
        source=Source(preset="presets/cinematic"),
        inputs=(),
        labels={},
        webhook=Webhook("https://example.com/hook", events) if events is not None else None,
        deadline=None,
        request_id="",
        create_time=START,
        update_time=START,
        sequence=1,
        attempt_count=1,
    )


async def progress_messages(job: Job, seconds: list[float]) -> tuple[list[OutboxMessage], SavingStore]:
    store, clock = SavingStore(), Clock()
    dispatcher = Dispatcher(
        store,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        QuietNotifier(),  # type: ignore[arg-type]
        DispatchSettings(worker="w"),
        clock=clock,
    )
    attempt = Attempt(dispatcher, job)
    for index, second in enumerate(seconds):
        clock.now = START + timedelta(seconds=second)
        event = ExecutionEvent("progress", progress=Progress(fraction=index / len(seconds), node_id="2"))
        assert not await attempt.on_event(event)
    return [m for _, messages in store.saved for m in messages], store


async def test_progress_events_go_out_at_most_once_every_five_seconds() -> None:
    times = [0, 0.5, 1, 2, 4.9, 5.0, 6, 9.9, 10.2, 10.3, 30]
    messages, store = await progress_messages(running(("job.progress", "job.succeeded")), times)
    assert [m.topic for m in messages] == [effects.WEBHOOK] * 4
    sent_at = [m.payload[effects.SNAPSHOT].update_time - START for m in messages]
    assert sent_at == [timedelta(seconds=s) for s in (0, 5.0, 10.2, 30)]
    for message in messages:
        snapshot = message.payload[effects.SNAPSHOT]
        assert message.key == f"{snapshot.id}:job.progress:{snapshot.sequence}"
        assert message.payload["event"] == "job.progress"
        assert snapshot.progress is not None
    # every event is saved with the very snapshot it carries, in the same write
    for job, saved in store.saved:
        for message in saved:
            assert message.payload[effects.SNAPSHOT] == job


async def test_no_progress_events_without_the_opt_in() -> None:
    for events in (None, (), ("job.succeeded", "job.failed")):
        messages, _ = await progress_messages(running(events), [0, 6, 12])
        assert messages == []
