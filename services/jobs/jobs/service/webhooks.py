"""Developer webhooks: signing secrets, deliveries made from the outbox, the sender, listing and redelivery.

The relay hands each `webhook` outbox message to `Webhooks.record_event`, which renders the event once and
stores it as a delivery keyed by the message, so an event yields exactly one delivery however often the relay
retries. The `Sender` then posts due deliveries, signed with every secret valid for the account, and records
each attempt; a refused target or a 410 ends a delivery, anything else is retried on the schedule.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from jobs.domain import webhook_secrets as secrets
from jobs.domain.effects import SNAPSHOT
from jobs.domain.ids import uuid7
from jobs.domain.jobs import Job
from jobs.domain.requests import REQUEST_ID
from jobs.domain.webhook_secrets import SecretVersion
from jobs.domain.webhooks import (
    DEFAULT_SCHEDULE,
    AttemptRecord,
    Delivery,
    DeliveryState,
    Outcome,
    after_attempt,
)
from jobs.service.jobs import not_found
from jobs.service.ports import JobStore, OutboxItem
from jobs.service.webhook_ports import DeliveryCursor, EventRenderer, Poster, SecretCipher, WebhookStore
from servicekit import errors
from servicekit.logging import get_logger
from servicekit.netguard import forbidden_target

log = get_logger("jobs.webhooks")
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 100
REDELIVERY_WINDOW = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(UTC)


def _invalid(reason: str, field: str, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(message, reason=reason, violations=(errors.FieldViolation(field, message),))


def _check_request_id(request_id: str) -> None:
    if request_id and not REQUEST_ID.match(request_id):
        raise _invalid("REQUEST_ID_INVALID", "request_id", "use 1 to 128 characters of A-Z a-z 0-9 . _ : -")


@dataclass(frozen=True)
class SecretView:
    """An account's current secret as it may be shown: masked, with the end of the previous one's grace."""

    masked: str
    version: int
    create_time: datetime
    previous_expire_time: datetime | None


class WebhookSecrets:
    """Per-account signing secrets: rotation (idempotent by request id), the masked view, the signing set."""

    def __init__(
        self, store: WebhookStore, cipher: SecretCipher | None, clock: Callable[[], datetime] = _now
    ) -> None:
        self.store = store
        self.cipher = cipher
        self.clock = clock

    @staticmethod
    def _binding(owner: str) -> str:
        return f"webhook_secrets/{owner}"

    async def configured(self, owner: str) -> bool:
        """Whether the owner has a secret, so webhooks can be signed."""
        return bool(await self.store.secret_versions(owner, 1))

    async def get(self, owner: str) -> SecretView:
        """The current secret, masked; NOT_FOUND WEBHOOK_SECRET_NOT_FOUND before the first rotation."""
        versions = await self.store.secret_versions(owner, 2)
        if not versions:
            raise errors.NotFound(
                "no webhook signing secret yet; create one with RotateWebhookSecret",
                reason="WEBHOOK_SECRET_NOT_FOUND",
            )
        return self._view(versions)

    def _view(self, versions: Sequence[SecretVersion]) -> SecretView:
        current, previous = versions[0], versions[1] if len(versions) > 1 else None
        expires = previous.expire_time if previous and previous.signs_at(self.clock()) else None
        return SecretView(current.masked, current.version, current.create_time, expires)

    async def rotate(self, owner: str, request_id: str, grace: timedelta | None) -> tuple[SecretView, str]:
        """A new current secret and its plaintext, shown only here; the previous one signs for `grace`."""
        _check_request_id(request_id)
        period = secrets.grace_period(grace)
        fingerprint = f"grace={period.total_seconds()}"
        if request_id and (earlier := await self.store.rotation(owner, request_id)) is not None:
            return await self._replay(earlier, fingerprint)
        if self.cipher is None:
            raise errors.FailedPrecondition(
                "webhook secrets cannot be stored: set WEBHOOK_SECRET_KEYS on the jobs service",
                reason="WEBHOOK_SECRET_KEYS_NOT_CONFIGURED",
            )
        plaintext, now = secrets.generate(), self.clock()
        new = SecretVersion(
            owner=owner,
            version=0,
            sealed=self.cipher.seal(plaintext, self._binding(owner)),
            masked=secrets.mask(plaintext),
            create_time=now,
            request_id=request_id,
            request_hash=fingerprint,
        )
        version = await self.store.rotate(new, now + period)
        if version is None:  # a concurrent call with the same request id won
            earlier = await self.store.rotation(owner, request_id)
            if earlier is None:
                raise errors.Aborted("a concurrent rotation interfered; retry", reason="CONCURRENT_CHANGE")
            return await self._replay(earlier, fingerprint)
        log.info("webhook.secret_rotated", owner=owner, version=version, grace_seconds=period.total_seconds())
        versions = await self.store.secret_versions(owner, 2, max_version=version)
        return self._view(versions), plaintext

    async def _replay(self, earlier: SecretVersion, fingerprint: str) -> tuple[SecretView, str]:
        if earlier.request_hash != fingerprint:
            raise errors.AlreadyExists(
                f"request_id {earlier.request_id!r} was used for a rotation with another grace period",
                reason="IDEMPOTENCY_KEY_REUSED",
            )
        versions = await self.store.secret_versions(earlier.owner, 2, max_version=earlier.version)
        return self._view(versions), self._open(earlier)

    def _open(self, version: SecretVersion) -> str:
        if self.cipher is None:
            raise errors.FailedPrecondition(
                "webhook secrets cannot be opened: set WEBHOOK_SECRET_KEYS on the jobs service",
                reason="WEBHOOK_SECRET_KEYS_NOT_CONFIGURED",
            )
        return self.cipher.open(version.sealed, self._binding(version.owner))

    async def signing(self, owner: str) -> list[str]:
        """The plaintext secrets that sign a delivery now, newest first."""
        now = self.clock()
        return [self._open(v) for v in await self.store.secret_versions(owner, 2) if v.signs_at(now)]


def encode_token(delivery: Delivery) -> str:
    """An opaque page token bound to the job whose deliveries are listed."""
    body = {"t": delivery.create_time.isoformat(), "id": delivery.id, "j": delivery.job_id}
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def decode_token(token: str, job_id: str) -> DeliveryCursor:
    """The cursor of a token made by `encode_token` for the same job."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if body["j"] != job_id:
            raise ValueError("another job")
        return DeliveryCursor(datetime.fromisoformat(body["t"]), str(body["id"]))
    except (ValueError, KeyError, TypeError):
        raise _invalid("PAGE_TOKEN_INVALID", "page_token", "unknown token") from None


def delivery_not_found(job_id: str, delivery_id: str) -> errors.NotFound:
    """The answer for a delivery that does not exist or belongs to someone else."""
    name = f"jobs/{job_id}/webhookDeliveries/{delivery_id}"
    return errors.NotFound(
        f"{name} does not exist", reason="WEBHOOK_DELIVERY_NOT_FOUND", metadata={"name": name}
    )


class Webhooks:
    """Deliveries: created from outbox messages, listed per job, and redelivered on request."""

    def __init__(
        self,
        store: WebhookStore,
        jobs: JobStore,
        render: EventRenderer,
        allowed_hosts: frozenset[str] = frozenset(),
        redeliveries_per_hour: int = 10,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.render = render
        self.allowed_hosts = allowed_hosts
        self.redeliveries_per_hour = redeliveries_per_hour
        self.clock = clock
        self.wake = asyncio.Event()  # set when a delivery becomes due, so the sender need not wait to poll

    async def record_event(self, item: OutboxItem) -> None:
        """The relay's handler of `webhook` messages: renders the event into exactly one delivery."""
        job_id, event_type = str(item.payload["job_id"]), str(item.payload["event"])
        snapshot = item.payload.get(SNAPSHOT)
        job = snapshot if isinstance(snapshot, Job) else await self.jobs.get(None, job_id)
        if job is None or job.webhook is None:
            log.warning(
                "webhook.event_dropped", job=f"jobs/{job_id}", event_type=event_type, why="no webhook"
            )
            return
        event_id = "evt_" + uuid7().replace("-", "")
        delivery = Delivery(
            id=uuid7(),
            job_id=job.id,
            owner=job.owner,
            event_id=event_id,
            event_type=event_type,
            event_time=job.update_time,
            body=self.render(event_id, event_type, job.update_time, job),
            url=job.webhook.url,
            state=DeliveryState.PENDING,
            create_time=job.update_time,
            update_time=self.clock(),
            next_attempt_time=self.clock(),
            source_key=item.key,
        )
        if await self.store.add_delivery(delivery):
            log.info(
                "webhook.queued", job=job.name, delivery=delivery.id, event_type=event_type, event_id=event_id
            )
            self.wake.set()

    async def list(
        self, owner: str, job_id: str, page_size: int, page_token: str
    ) -> tuple[list[Delivery], str]:
        """A page of one of the owner's jobs' deliveries, newest first, and the next page's token."""
        if await self.jobs.get(owner, job_id) is None:
            raise not_found(job_id)
        if page_size < 0:
            raise _invalid("FIELD_INVALID", "page_size", "must be >= 0")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        cursor = decode_token(page_token, job_id) if page_token else None
        page = await self.store.deliveries(job_id, size + 1, cursor)
        more = len(page) > size
        page = page[:size]
        return page, encode_token(page[-1]) if more else ""

    async def redeliver(self, owner: str, job_id: str, delivery_id: str, request_id: str) -> Delivery:
        """A new PENDING delivery of a finished delivery's event, with the same event id and body."""
        _check_request_id(request_id)
        original = await self.store.delivery(owner, delivery_id)
        if original is None or original.job_id != job_id:
            raise delivery_not_found(job_id, delivery_id)
        if request_id and (earlier := await self.store.delivery_by_request(owner, request_id)) is not None:
            return self._replayed(earlier, original)
        if not original.state.finished:
            raise errors.FailedPrecondition(
                f"{original.name} is still {original.state.value}; redeliver it once it has finished",
                reason="WEBHOOK_DELIVERY_IN_PROGRESS",
                metadata={"name": original.name, "state": original.state.value},
            )
        job = await self.jobs.get(owner, job_id)
        url = job.webhook.url if job is not None and job.webhook is not None else original.url
        if reason := forbidden_target(url, self.allowed_hosts):
            raise _invalid("WEBHOOK_URL_FORBIDDEN", "webhook.url", reason)
        now = self.clock()
        await self._check_rate(job_id, now)
        new = replace(
            original,
            id=uuid7(),
            url=url,
            state=DeliveryState.PENDING,
            create_time=now,
            update_time=now,
            next_attempt_time=now,
            source_key=None,
            redelivery_of=original.id,
            request_id=request_id,
            attempt=0,
            http_status=0,
            latency=None,
            response_excerpt="",
            error_message="",
            last_attempt_time=None,
        )
        if not await self.store.add_delivery(new):
            earlier = await self.store.delivery_by_request(owner, request_id)
            if earlier is None:
                raise errors.Aborted("a concurrent redelivery interfered; retry", reason="CONCURRENT_CHANGE")
            return self._replayed(earlier, original)
        log.info("webhook.redelivery_queued", job=f"jobs/{job_id}", delivery=new.id, of=original.id)
        self.wake.set()
        return new

    @staticmethod
    def _replayed(earlier: Delivery, original: Delivery) -> Delivery:
        if earlier.redelivery_of != original.id:
            raise errors.AlreadyExists(
                f"request_id {earlier.request_id!r} was used to redeliver another delivery",
                reason="IDEMPOTENCY_KEY_REUSED",
                metadata={"delivery": earlier.name},
            )
        return earlier

    async def _check_rate(self, job_id: str, now: datetime) -> None:
        recent = await self.store.redeliveries_since(job_id, now - REDELIVERY_WINDOW)
        if len(recent) >= self.redeliveries_per_hour:
            wait = recent[len(recent) - self.redeliveries_per_hour] + REDELIVERY_WINDOW - now
            raise errors.ResourceExhausted(
                f"at most {self.redeliveries_per_hour} redeliveries per job per hour",
                reason="REDELIVERY_RATE_EXCEEDED",
                metadata={"job": f"jobs/{job_id}", "limit": str(self.redeliveries_per_hour)},
                retry_after=max(1.0, wait.total_seconds()),
            )


@dataclass(frozen=True)
class SenderSettings:
    """How the sender paces itself."""

    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    concurrency: int = 8
    hold_seconds: float = 60.0  # longer than any attempt can take, so two senders never overlap
    poll_seconds: float = 1.0


class Sender:
    """Posts due deliveries, each signed at the moment of its attempt, and records every attempt."""

    def __init__(
        self,
        store: WebhookStore,
        secrets: WebhookSecrets,
        poster: Poster,
        wake: asyncio.Event,
        settings: SenderSettings = SenderSettings(),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.poster = poster
        self.wake = wake
        self.settings = settings
        self.clock = clock
        self.inflight: set[asyncio.Task[None]] = set()

    async def send_due(self) -> int:
        """One pass: sends what is due now and waits for the outcomes; returns how many it sent."""
        due = await self.store.claim_due(self.clock(), self.settings.concurrency, self.settings.hold_seconds)
        await asyncio.gather(*(self.send(d) for d in due))
        return len(due)

    async def run(self) -> None:
        """Sends until cancelled, up to `concurrency` deliveries at once."""
        try:
            while True:
                claimed = 0
                free = self.settings.concurrency - len(self.inflight)
                if free > 0:
                    try:
                        due = await self.store.claim_due(self.clock(), free, self.settings.hold_seconds)
                    except Exception as exc:  # the database is down: try again after the pause
                        log.warning("webhook.claim_failed", error=repr(exc)[:200])
                        due = []
                    for delivery in due:
                        task = asyncio.create_task(self.send(delivery))
                        self.inflight.add(task)
                        task.add_done_callback(self._done)
                    claimed = len(due)
                if not claimed:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.settings.poll_seconds)
        finally:
            for task in self.inflight:
                task.cancel()
            await asyncio.gather(*self.inflight, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.inflight.discard(task)
        self.wake.set()

    async def send(self, delivery: Delivery) -> None:
        """One attempt of `delivery`, recorded unless another sender recorded it first."""
        outcome = await self._attempt(delivery)
        now = self.clock()
        after = after_attempt(delivery, outcome, now, self.settings.schedule)
        try:
            recorded = await self.store.record(after, AttemptRecord(delivery.id, after.attempt, now, outcome))
        except Exception as exc:  # the attempt repeats once the claim's hold runs out
            log.warning("webhook.record_failed", delivery=delivery.id, error=repr(exc)[:200])
            return
        log.info(
            "webhook.attempted",
            job=f"jobs/{delivery.job_id}",
            delivery=delivery.id,
            event_id=delivery.event_id,
            attempt=after.attempt,
            http_status=outcome.http_status,
            latency_ms=round(outcome.latency.total_seconds() * 1000, 1) if outcome.latency else None,
            error=outcome.error_message or None,
            state=after.state.value,
            recorded=recorded,
        )

    async def _attempt(self, delivery: Delivery) -> Outcome:
        try:
            signing = await self.secrets.signing(delivery.owner)
        except errors.DomainError as exc:
            return Outcome(error_message=f"the signing secret could not be opened ({exc.reason})")
        if not signing:
            return Outcome(error_message="the account has no webhook signing secret", refused=True)
        timestamp = int(self.clock().timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "comfy-api-webhooks/1",
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": secrets.signature_header(
                signing, delivery.event_id, timestamp, delivery.body
            ),
        }
        return await self.poster.post(delivery.url, headers, delivery.body.encode())
