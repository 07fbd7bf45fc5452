"""Alembic, one history per context, each in its own Postgres schema.

A context keeps its revisions in `<package>/migrations/` with a two-line env.py that calls `run_env`.
The schema is created on first upgrade, the version table lives inside it, and tables are created
through `search_path`, so a context's history never touches another schema.
"""

from __future__ import annotations

import asyncio

from alembic import command
from alembic import context as alembic_context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from servicekit.db import async_url


def config(package: str, url: str, schema: str) -> Config:
    """The Alembic config of one context's history against one database."""
    cfg = Config()
    cfg.set_main_option("script_location", f"{package}:migrations")
    cfg.attributes["database_url"] = url
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(package: str, url: str, schema: str, revision: str = "head") -> None:
    """Migrates a context's schema up to `revision` (blocking; call from a thread inside an event loop)."""
    command.upgrade(config(package, url, schema), revision)


def downgrade(package: str, url: str, schema: str, revision: str = "base") -> None:
    """Migrates a context's schema down to `revision`."""
    command.downgrade(config(package, url, schema), revision)


def run_env(target_metadata: MetaData) -> None:
    """The body of every context's env.py: runs the requested migration online over asyncpg."""
    cfg = alembic_context.config
    schema = cfg.attributes["schema"]
    asyncio.run(_run_online(cfg.attributes["database_url"], schema, target_metadata))


async def _run_online(url: str, schema: str, target_metadata: MetaData) -> None:
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            # Pods starting together each run `migrate`; the lock makes them take turns, per schema.
            await connection.execute(
                text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": f"migrate:{schema}"}
            )
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await connection.execute(text(f'SET search_path TO "{schema}"'))
            await connection.commit()
            await connection.run_sync(_run_sync, schema, target_metadata)
    finally:
        await engine.dispose()


def _run_sync(connection: Connection, schema: str, target_metadata: MetaData) -> None:
    alembic_context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=schema,
        transaction_per_migration=True,
    )
    with alembic_context.begin_transaction():
        alembic_context.run_migrations()
