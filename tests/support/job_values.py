"""Job values for the tests of the jobs context's stores and channels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from jobs.domain.jobs import Job, JobState, Priority, Source

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def make_job(
    owner: str = "a",
    state: JobState = JobState.QUEUED,
    created: datetime = EPOCH,
    *,
    priority: Priority = Priority.NORMAL,
    request_id: str = "",
    sequence: int = 1,
) -> Job:
    """A raw-workflow job of `users/{owner}` with no inputs, labels or webhook."""
    return Job(
        id=str(uuid.uuid4()),
        owner=f"users/{owner}",
        state=state,
        priority=priority,
        source=Source(workflow_sha256="0" * 64),
        inputs=(),
        labels={},
        webhook=None,
        deadline=None,
        request_id=request_id,
        create_time=created,
        update_time=created,
        sequence=sequence,
    )
