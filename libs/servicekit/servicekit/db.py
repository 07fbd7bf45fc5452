"""The async SQLAlchemy engine on asyncpg, one Postgres schema per context.

Every connection of a context's engine has `search_path` set to that context's schema only, so a
context cannot read another's tables by accident; each context may also be pointed at its own
database by URL.

Connections are not pinged on checkout: that would cost a round trip on every use. A connection the
server dropped (a restart, a failover) fails the one statement that finds it (UNAVAILABLE, see
`servicekit.interceptors`); the pool then discards every connection made before, and the caller's retry
gets a fresh one.
"""

from __future__ import annotations

import functools

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from servicekit import errors
from servicekit.server import Dependency


def async_url(url: str) -> str:
    """Normalizes `postgres://` and `postgresql://` URLs to the asyncpg driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.get_backend_name() != "postgresql":
        raise errors.InvalidArgument(
            f"DATABASE_URL must be a PostgreSQL URL, got {parsed.drivername}", reason="BAD_DATABASE_URL"
        )
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(url: str, schema: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine whose connections see only `schema` (plus `public` for extensions).

    The pool holds at most `pool_size` connections and keeps them: a burst waits for one rather than
    opening and closing overflow connections, each a new server process and handshake.
    """
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"server_settings": {"search_path": f"{schema},public", "application_name": schema}},
    )


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool without BEGIN and COMMIT around each use, for statements that are atomic alone."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def session_factory(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Raises unless the database answers a trivial query."""
    async with engine.connect() as connection:
        await connection.execute(text("select 1"))


def dependency(engine: AsyncEngine) -> Dependency:
    """The readiness check of a service that needs this database."""
    return Dependency("postgres", functools.partial(ping, engine))
