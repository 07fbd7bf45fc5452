"""Webhook secrets, deliveries and their attempt log in PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.adapters.tables import webhook_attempts, webhook_deliveries, webhook_secrets
from jobs.domain.webhook_secrets import SecretVersion
from jobs.domain.webhooks import AttemptRecord, Delivery, DeliveryState, Outcome
from jobs.service.webhook_ports import DeliveryCursor

_DUE = ("pending", "retrying")


def _secret(row: Any) -> SecretVersion:
    return SecretVersion(
        owner=row.owner,
        version=row.version,
        sealed=row.sealed,
        masked=row.masked,
        create_time=row.create_time,
        expire_time=row.expire_time,
        request_id=row.request_id,
        request_hash=row.request_hash,
    )


def _seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


def _delivery_row(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "job_id": d.job_id,
        "owner": d.owner,
        "source_key": d.source_key,
        "redelivery_of": d.redelivery_of,
        "request_id": d.request_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "event_time": d.event_time,
        "body": d.body,
        "url": d.url,
        "state": d.state.value,
        "attempt": d.attempt,
        "http_status": d.http_status,
        "latency_seconds": _seconds(d.latency),
        "response_excerpt": d.response_excerpt,
        "error_message": d.error_message,
        "last_attempt_time": d.last_attempt_time,
        "next_attempt_time": d.next_attempt_time,
        "create_time": d.create_time,
        "update_time": d.update_time,
    }


def _delivery(row: Any) -> Delivery:
    latency = row.latency_seconds
    return Delivery(
        id=str(row.id),
        job_id=str(row.job_id),
        owner=row.owner,
        event_id=row.event_id,
        event_type=row.event_type,
        event_time=row.event_time,
        body=row.body,
        url=row.url,
        state=DeliveryState(row.state),
        create_time=row.create_time,
        update_time=row.update_time,
        next_attempt_time=row.next_attempt_time,
        source_key=row.source_key,
        redelivery_of=str(row.redelivery_of) if row.redelivery_of else None,
        request_id=row.request_id,
        attempt=row.attempt,
        http_status=row.http_status,
        latency=timedelta(seconds=latency) if latency is not None else None,
        response_excerpt=row.response_excerpt,
        error_message=row.error_message,
        last_attempt_time=row.last_attempt_time,
    )


_CLAIM_DUE = text("""
    UPDATE webhook_deliveries SET next_attempt_time = :hold_until
    WHERE id IN (SELECT id FROM webhook_deliveries
                 WHERE state IN ('pending', 'retrying') AND next_attempt_time <= :now
                 ORDER BY next_attempt_time, id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING *
""")


class SqlWebhookStore:
    """The webhook tables behind the WebhookStore port."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def secret_versions(
        self, owner: str, limit: int, max_version: int | None = None
    ) -> list[SecretVersion]:
        statement = select(webhook_secrets).where(webhook_secrets.c.owner == owner)
        if max_version is not None:
            statement = statement.where(webhook_secrets.c.version <= max_version)
        statement = statement.order_by(webhook_secrets.c.version.desc()).limit(limit)
        async with self.engine.connect() as connection:
            return [_secret(row) for row in (await connection.execute(statement)).all()]

    async def rotation(self, owner: str, request_id: str) -> SecretVersion | None:
        statement = select(webhook_secrets).where(
            webhook_secrets.c.owner == owner, webhook_secrets.c.request_id == request_id
        )
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return _secret(row) if row else None

    async def rotate(self, new: SecretVersion, previous_until: datetime) -> int | None:
        table = webhook_secrets
        try:
            async with self.engine.begin() as connection:
                # One rotation per owner at a time, so versions stay gapless and only one previous survives.
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext('webhook_secrets'), hashtext(:owner))"),
                    {"owner": new.owner},
                )
                latest = await connection.scalar(
                    select(func.max(table.c.version)).where(table.c.owner == new.owner)
                )
                version = int(latest or 0) + 1
                if latest is not None:
                    await connection.execute(
                        update(table)
                        .where(table.c.owner == new.owner, table.c.version == latest)
                        .values(expire_time=previous_until)
                    )
                    await connection.execute(
                        update(table)
                        .where(
                            table.c.owner == new.owner,
                            table.c.version < latest,
                            or_(table.c.expire_time.is_(None), table.c.expire_time > new.create_time),
                        )
                        .values(expire_time=new.create_time)
                    )
                await connection.execute(
                    insert(table).values(
                        owner=new.owner,
                        version=version,
                        sealed=new.sealed,
                        masked=new.masked,
                        create_time=new.create_time,
                        expire_time=None,
                        request_id=new.request_id,
                        request_hash=new.request_hash,
                    )
                )
        except IntegrityError:
            return None
        return version

    async def add_delivery(self, delivery: Delivery) -> bool:
        statement = pg_insert(webhook_deliveries).values(**_delivery_row(delivery)).on_conflict_do_nothing()
        async with self.engine.begin() as connection:
            result = await connection.execute(statement)
        return bool(result.rowcount)

    async def delivery(self, owner: str, delivery_id: str) -> Delivery | None:
        statement = select(webhook_deliveries).where(
            webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.owner == owner
        )
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return _delivery(row) if row else None

    async def delivery_by_request(self, owner: str, request_id: str) -> Delivery | None:
        statement = select(webhook_deliveries).where(
            webhook_deliveries.c.owner == owner, webhook_deliveries.c.request_id == request_id
        )
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return _delivery(row) if row else None

    async def deliveries(self, job_id: str, size: int, cursor: DeliveryCursor | None) -> list[Delivery]:
        table = webhook_deliveries
        statement = select(table).where(table.c.job_id == job_id)
        if cursor is not None:
            statement = statement.where(
                or_(
                    table.c.create_time < cursor.create_time,
                    and_(table.c.create_time == cursor.create_time, table.c.id < cursor.delivery_id),
                )
            )
        statement = statement.order_by(table.c.create_time.desc(), table.c.id.desc()).limit(size)
        async with self.engine.connect() as connection:
            return [_delivery(row) for row in (await connection.execute(statement)).all()]

    async def redeliveries_since(self, job_id: str, since: datetime) -> list[datetime]:
        table = webhook_deliveries
        statement = (
            select(table.c.create_time)
            .where(table.c.job_id == job_id, table.c.redelivery_of.is_not(None), table.c.create_time >= since)
            .order_by(table.c.create_time)
        )
        async with self.engine.connect() as connection:
            return list((await connection.scalars(statement)).all())

    async def claim_due(self, now: datetime, limit: int, hold_seconds: float) -> list[Delivery]:
        params = {"now": now, "hold_until": now + timedelta(seconds=hold_seconds), "limit": limit}
        async with self.engine.begin() as connection:
            rows = (await connection.execute(_CLAIM_DUE, params)).all()
        return [_delivery(row) for row in rows]

    async def record(self, delivery: Delivery, attempt: AttemptRecord) -> bool:
        table = webhook_deliveries
        values = _delivery_row(delivery)
        for key in ("id", "job_id", "owner", "source_key", "redelivery_of", "request_id", "create_time"):
            del values[key]
        fence = [table.c.id == delivery.id, table.c.attempt == attempt.attempt - 1, table.c.state.in_(_DUE)]
        outcome = attempt.outcome
        async with self.engine.begin() as connection:
            result = await connection.execute(update(table).where(*fence).values(**values))
            if result.rowcount != 1:
                return False
            await connection.execute(
                pg_insert(webhook_attempts)
                .values(
                    delivery_id=delivery.id,
                    attempt=attempt.attempt,
                    attempt_time=attempt.time,
                    http_status=outcome.http_status,
                    latency_seconds=_seconds(outcome.latency),
                    response_excerpt=outcome.response_excerpt,
                    error_message=outcome.error_message,
                )
                .on_conflict_do_nothing()
            )
        return True

    async def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        table = webhook_attempts
        statement = select(table).where(table.c.delivery_id == delivery_id).order_by(table.c.attempt)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [
            AttemptRecord(
                str(row.delivery_id),
                row.attempt,
                row.attempt_time,
                Outcome(
                    http_status=row.http_status,
                    latency=timedelta(seconds=row.latency_seconds)
                    if row.latency_seconds is not None
                    else None,
                    response_excerpt=row.response_excerpt,
                    error_message=row.error_message,
                ),
            )
            for row in rows
        ]
