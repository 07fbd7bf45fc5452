"""SQLAlchemy table metadata of the jobs schema; tables are created through search_path."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

SCHEMA_NAME = "jobs"
metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("owner", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("source", JSONB, nullable=False),
    Column("inputs", JSONB, nullable=False),
    Column("labels", JSONB, nullable=False),
    Column("webhook", JSONB),
    Column("deadline", DateTime(timezone=True)),
    Column("request_id", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("workflow_json", Text, nullable=False),
    Column("files", JSONB, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    Column("start_time", DateTime(timezone=True)),
    Column("end_time", DateTime(timezone=True)),
    Column("attempt_count", Integer, nullable=False),
    # The highest attempt ever sent to inference: a claim past it starts an execution no backend can know.
    Column("submitted_attempts", Integer, nullable=False, server_default="0"),
    Column("progress", JSONB),
    Column("error", JSONB),
    Column("outputs", JSONB, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("next_attempt_time", DateTime(timezone=True), nullable=False),
    Column("lease_owner", Text),
    Column("lease_expires", DateTime(timezone=True)),
)

owner_turns = Table(
    "owner_turns",
    metadata,
    Column("owner", Text, primary_key=True),
    Column("last_dispatch_time", DateTime(timezone=True), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("available_time", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("done_time", DateTime(timezone=True)),
)

webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("owner", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("sealed", Text, nullable=False),
    Column("masked", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("expire_time", DateTime(timezone=True)),
    Column("request_id", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("job_id", UUID(as_uuid=False), nullable=False),
    Column("owner", Text, nullable=False),
    Column("source_key", Text),
    Column("redelivery_of", UUID(as_uuid=False)),
    Column("request_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("latency_seconds", Double),
    Column("response_excerpt", Text, nullable=False),
    Column("error_message", Text, nullable=False),
    Column("last_attempt_time", DateTime(timezone=True)),
    Column("next_attempt_time", DateTime(timezone=True)),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", UUID(as_uuid=False), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("attempt_time", DateTime(timezone=True), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("latency_seconds", Double),
    Column("response_excerpt", Text, nullable=False),
    Column("error_message", Text, nullable=False),
)
