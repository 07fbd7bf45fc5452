"""Every context's Alembic history goes up and down on real PostgreSQL, inside its own schema only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from servicekit import migrations
from servicekit.cli import Schema
from tests.support import databases


@pytest.fixture
async def empty_database(postgres_url: str) -> AsyncIterator[str]:
    name = databases.unique_name("mig")
    url = await databases.create_database(postgres_url, name)
    yield url
    await databases.drop_database(postgres_url, name)


async def tables(url: str) -> dict[str, set[str]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('pg_catalog', 'information_schema')"
        )
        version_rows = {}
        for schema in {r["table_schema"] for r in rows if r["table_name"] == "alembic_version"}:
            version_rows[schema] = await connection.fetchval(
                f'select count(*) from "{schema}".alembic_version'
            )
    finally:
        await connection.close()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["table_schema"], set()).add(row["table_name"])
    found["__versions__"] = {f"{k}={v}" for k, v in version_rows.items()}
    return found


@pytest.mark.parametrize("schema", databases.SCHEMAS, ids=lambda s: s.name)
async def test_history_upgrades_downgrades_and_upgrades_again_inside_its_schema(
    schema: Schema, empty_database: str
) -> None:
    await asyncio.to_thread(migrations.upgrade, schema.package, empty_database, schema.name)
    after_upgrade = await tables(empty_database)
    assert set(after_upgrade) - {"__versions__"} == {schema.name}, "a context must touch only its own schema"
    assert "alembic_version" in after_upgrade[schema.name]
    assert after_upgrade["__versions__"] == {f"{schema.name}=1"}

    await asyncio.to_thread(migrations.downgrade, schema.package, empty_database, schema.name)
    after_downgrade = await tables(empty_database)
    assert after_downgrade.get(schema.name, set()) <= {"alembic_version"}
    assert after_downgrade["__versions__"] == {f"{schema.name}=0"}

    await asyncio.to_thread(migrations.upgrade, schema.package, empty_database, schema.name)
    assert await tables(empty_database) == after_upgrade


async def test_all_histories_share_one_database_without_colliding(empty_database: str) -> None:
    for schema in databases.SCHEMAS:
        await asyncio.to_thread(migrations.upgrade, schema.package, empty_database, schema.name)
    found = await tables(empty_database)
    assert found["__versions__"] == {f"{s.name}=1" for s in databases.SCHEMAS}


async def test_billing_totals_start_from_the_reservations_already_written(empty_database: str) -> None:
    await asyncio.to_thread(migrations.upgrade, "billing", empty_database, "billing", "0002")
    connection = await asyncpg.connect(empty_database)
    try:
        rows = [
            ("jobs/1", "users/a", 2, "committed"),
            ("jobs/2", "users/a", 1, "reserved"),
            ("jobs/3", "users/a", 5, "released"),
            ("jobs/4", "users/b", 1, "reserved"),
        ]
        for job, owner, units, state in rows:
            await connection.execute(
                "insert into billing.reservations values "
                "($1, $2, $3, $4, '2026-11-01T00:00:00Z', 'r', now(), now())",
                job,
                owner,
                units,
                state,
            )
        await asyncio.to_thread(migrations.upgrade, "billing", empty_database, "billing")
        totals = await connection.fetch(
            "select owner, committed, reserved from billing.usage_totals order by owner"
        )
        functions = await connection.fetch(
            "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'billing' order by p.proname"
        )
    finally:
        await connection.close()
    assert [tuple(r) for r in totals] == [("users/a", 2, 1), ("users/b", 0, 1)]
    assert [r["proname"] for r in functions] == ["reserve_units", "settle_units"]
