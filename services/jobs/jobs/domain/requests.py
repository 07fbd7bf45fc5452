"""A CreateJob request as the domain sees it, with the checks that need no other context."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime

from jobs.domain.effects import EVENT_TYPES
from jobs.domain.jobs import Input, Priority, Webhook
from jobs.domain.presets import Value
from servicekit import errors
from servicekit.netguard import forbidden_target

MAX_INPUTS = 16
MAX_LABELS = 32
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True)
class NewJob:
    """What a caller asks to run; exactly one of `preset` and `workflow_json` is set."""

    owner: str
    request_id: str
    preset: str
    preset_version: int
    parameters: dict[str, Value]
    workflow_json: str
    inputs: tuple[Input, ...]
    priority: Priority
    deadline: datetime | None
    webhook: Webhook | None
    labels: dict[str, str]

    def fingerprint(self) -> str:
        """A digest of everything but owner and idempotency key, to tell a replay from a reused key."""
        body = asdict(self)
        del body["owner"], body["request_id"]
        body["deadline"] = self.deadline.isoformat() if self.deadline else None
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _invalid(reason: str, field: str, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(message, reason=reason, violations=(errors.FieldViolation(field, message),))


def check(job: NewJob, now: datetime, webhook_hosts: frozenset[str]) -> None:
    """Refuses a malformed request with INVALID_ARGUMENT naming the field."""
    if job.request_id and not REQUEST_ID.match(job.request_id):
        raise _invalid("REQUEST_ID_INVALID", "request_id", "use 1 to 128 characters of A-Z a-z 0-9 . _ : -")
    if bool(job.preset) == bool(job.workflow_json):
        raise _invalid("SOURCE_MISSING", "source", "set exactly one of preset and workflow_json")
    if job.deadline is not None and job.deadline <= now:
        raise _invalid("DEADLINE_INVALID", "deadline", "the deadline must be in the future")
    if len(job.inputs) > MAX_INPUTS:
        raise _invalid("INPUT_INVALID", "inputs", f"at most {MAX_INPUTS} inputs")
    user_area = f"uploads/{job.owner.removeprefix('users/')}/"
    for index, item in enumerate(job.inputs):
        if item.url:
            raise errors.Unimplemented(
                "inputs by URL are not accepted yet; upload the image and pass its upload_key",
                reason="URL_INPUTS_UNSUPPORTED",
                metadata={"field": f"inputs[{index}].url"},
            )
        if not item.name and not item.node_id:
            raise _invalid("INPUT_INVALID", f"inputs[{index}].name", "name the input")
        if not item.storage_key.startswith(user_area) or ".." in item.storage_key.split("/"):
            raise errors.NotFound(
                f"upload {item.storage_key!r} does not exist",
                reason="UPLOAD_NOT_FOUND",
                metadata={"upload_key": item.storage_key},
            )
    if len(job.labels) > MAX_LABELS:
        raise _invalid("LABELS_INVALID", "labels", f"at most {MAX_LABELS} labels")
    for key, value in job.labels.items():
        if not LABEL_KEY.match(key) or len(value) > 256:
            raise _invalid(
                "LABELS_INVALID",
                f"labels[{key!r}]",
                "keys are 1-63 of a-z 0-9 _ . - starting with a letter; values at most 256 characters",
            )
    if job.webhook is not None:
        check_webhook(job.webhook, webhook_hosts)


def check_webhook(webhook: Webhook, allowed_hosts: frozenset[str]) -> None:
    """Refuses webhook targets that could reach inside the platform (SSRF) and unknown event types."""
    for event in webhook.events:
        if event not in EVENT_TYPES:
            raise _invalid("WEBHOOK_EVENT_UNKNOWN", "webhook.events", f"unknown event {event!r}")
    forbidden = forbidden_target(webhook.url, allowed_hosts)
    if forbidden:
        raise _invalid("WEBHOOK_URL_FORBIDDEN", "webhook.url", forbidden)
