"""Mapping between Job values and their stored form (table rows, JSON for the live-update channel)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from jobs.domain.jobs import (
    Artifact,
    ErrorReason,
    Input,
    Job,
    JobError,
    JobState,
    Priority,
    Progress,
    Source,
    Webhook,
)

JSON_FIELDS = ("source", "inputs", "labels", "webhook", "progress", "error", "outputs")
TIME_FIELDS = ("deadline", "create_time", "update_time", "start_time", "end_time")


def to_row(job: Job) -> dict[str, Any]:
    """The table columns of a job (without the queue's own columns)."""
    return {
        "id": job.id,
        "owner": job.owner,
        "state": job.state.value,
        "priority": int(job.priority),
        "source": asdict(job.source),
        "inputs": [asdict(i) for i in job.inputs],
        "labels": job.labels,
        "webhook": asdict(job.webhook) if job.webhook else None,
        "deadline": job.deadline,
        "request_id": job.request_id,
        "create_time": job.create_time,
        "update_time": job.update_time,
        "start_time": job.start_time,
        "end_time": job.end_time,
        "attempt_count": job.attempt_count,
        "progress": asdict(job.progress) if job.progress else None,
        "error": asdict(job.error) if job.error else None,
        "outputs": [asdict(a) for a in job.outputs],
        "cancel_requested": job.cancel_requested,
        "sequence": job.sequence,
    }


def from_row(row: Any, queue_position: int = 0) -> Job:
    """A job from a table row (a SQLAlchemy Row or a mapping)."""
    data = row._mapping if hasattr(row, "_mapping") else row
    source = dict(data["source"])
    for key in ("output_node_ids", "node_types"):
        source[key] = tuple(source.get(key, ()))
    webhook = data["webhook"]
    error = data["error"]
    return Job(
        id=str(data["id"]),
        owner=data["owner"],
        state=JobState(data["state"]),
        priority=Priority(data["priority"]),
        source=Source(**source),
        inputs=tuple(Input(**i) for i in data["inputs"]),
        labels=dict(data["labels"]),
        webhook=Webhook(webhook["url"], tuple(webhook["events"])) if webhook else None,
        deadline=data["deadline"],
        request_id=data["request_id"],
        create_time=data["create_time"],
        update_time=data["update_time"],
        sequence=data["sequence"],
        start_time=data["start_time"],
        end_time=data["end_time"],
        attempt_count=data["attempt_count"],
        queue_position=queue_position,
        progress=Progress(**data["progress"]) if data["progress"] else None,
        error=JobError(**{**error, "reason": ErrorReason(error["reason"])}) if error else None,
        outputs=tuple(Artifact(**a) for a in data["outputs"]),
        cancel_requested=data["cancel_requested"],
    )


def to_json(job: Job) -> dict[str, Any]:
    """A job as a JSON-compatible dict, for the live-update channel."""
    row = to_row(job)
    row["queue_position"] = job.queue_position
    for key in TIME_FIELDS:
        value = row[key]
        row[key] = value.isoformat() if value else None
    return row


def from_json(data: dict[str, Any]) -> Job:
    """The inverse of `to_json`."""
    converted = dict(data)
    for key in TIME_FIELDS:
        converted[key] = datetime.fromisoformat(data[key]) if data.get(key) else None
    return from_row(converted, queue_position=int(data.get("queue_position", 0)))
