"""The ports of the webhook use cases: deliveries and secrets, the cipher, the sender and the renderer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from jobs.domain.jobs import Job
from jobs.domain.webhook_secrets import SecretVersion
from jobs.domain.webhooks import AttemptRecord, Delivery, Outcome


@dataclass(frozen=True)
class DeliveryCursor:
    """Where the next page of a job's deliveries starts (exclusive), newest first."""

    create_time: datetime
    delivery_id: str


class WebhookStore(Protocol):
    """Secrets and deliveries in durable storage."""

    async def secret_versions(
        self, owner: str, limit: int, max_version: int | None = None
    ) -> list[SecretVersion]:
        """The owner's newest secret versions (up to `max_version`), newest first."""
        ...

    async def rotation(self, owner: str, request_id: str) -> SecretVersion | None:
        """The version an earlier rotation with `request_id` created."""
        ...

    async def rotate(self, new: SecretVersion, previous_until: datetime) -> int | None:
        """Stores `new` as the next version and returns its number, ending the older ones (the latest at
        `previous_until`, any before it at once); None when a concurrent call used the same request id."""
        ...

    async def add_delivery(self, delivery: Delivery) -> bool:
        """Stores a new delivery; False when one exists for its source key or request id."""
        ...

    async def delivery(self, owner: str, delivery_id: str) -> Delivery | None: ...

    async def delivery_by_request(self, owner: str, request_id: str) -> Delivery | None: ...

    async def deliveries(self, job_id: str, size: int, cursor: DeliveryCursor | None) -> list[Delivery]: ...

    async def redeliveries_since(self, job_id: str, since: datetime) -> list[datetime]:
        """The creation times of the job's redeliveries made at or after `since`, oldest first."""
        ...

    async def claim_due(self, now: datetime, limit: int, hold_seconds: float) -> list[Delivery]:
        """Deliveries due now, hidden from other senders for `hold_seconds`."""
        ...

    async def record(self, delivery: Delivery, attempt: AttemptRecord) -> bool:
        """Logs the attempt and stores the delivery, unless another sender recorded this attempt first."""
        ...

    async def attempts(self, delivery_id: str) -> list[AttemptRecord]: ...


class SecretCipher(Protocol):
    """Seals secrets at rest; `binding` ties a sealed value to where it is stored."""

    def seal(self, plaintext: str, binding: str) -> str: ...

    def open(self, sealed: str, binding: str) -> str: ...


class Poster(Protocol):
    """Sends one signed POST to a webhook URL, refusing targets inside the platform; never raises."""

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Outcome: ...


class EventRenderer(Protocol):
    """The WebhookEvent JSON body of one event."""

    def __call__(self, event_id: str, event_type: str, event_time: datetime, job: Job) -> str: ...
