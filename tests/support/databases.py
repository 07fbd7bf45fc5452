"""Per-test databases: each test gets a fresh clone of a template database with every schema migrated."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
from sqlalchemy.engine import make_url

from billing.main import SCHEMA as BILLING
from drive_sync.main import SCHEMA as DRIVE_SYNC
from identity.main import SCHEMA as IDENTITY
from jobs.main import SCHEMA as JOBS
from servicekit import migrations
from servicekit.cli import Schema

SCHEMAS: tuple[Schema, ...] = (IDENTITY, BILLING, JOBS, DRIVE_SYNC)


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """Creates database `name` (optionally cloned from `template`) and returns its URL."""
    connection = await asyncpg.connect(_plain(server_url))
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await connection.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await connection.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drops a test database, disconnecting whoever still uses it."""
    connection = await asyncpg.connect(_plain(server_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def migrated_template(server_url: str) -> str:
    """A new database with every context's history at head, to clone per test; returns its name."""
    name = f"comfyapi_tpl_{secrets.token_hex(4)}"
    url = await create_database(server_url, name)
    for schema in SCHEMAS:
        await asyncio.to_thread(migrations.upgrade, schema.package, url, schema.name)
    return name


def unique_name(prefix: str = "t") -> str:
    """A database name no other test uses."""
    return f"comfyapi_{prefix}_{secrets.token_hex(5)}"
