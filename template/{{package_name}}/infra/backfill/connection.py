"""The runner's connection, and the lock that makes it the only one. Template-owned.

One runner per backfill, on any number of pods: a session-level advisory lock on
a connection of the runner's own, named in pg_stat_activity (`backfill NAME`),
so a second runner can say who holds it, as the migrate step does. Session-level:
so not through a transaction-mode pooler, which would hand the lock to others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..database_url import DatabaseUrl
from ..engines import engine_for
from ..migrations.lock import lock_holder
from . import state
from .errors import BackfillError

_LOCK = text(
    "SELECT pg_is_in_recovery(),"
    " CASE WHEN pg_is_in_recovery() THEN false ELSE pg_try_advisory_lock(:key) END"
)


def backfill_engine(database: DatabaseUrl, name: str) -> AsyncEngine:
    """A connection of its own, named in pg_stat_activity (and so in "who holds it")."""
    if database.pooler == "transaction":
        raise BackfillError(
            f"backfill {name}: a runner holds a session-level advisory lock, which a "
            "transaction-mode pooler does not keep; set DATABASE_MIGRATION_URL to a direct connection"
        )
    arguments = dict(database.connect_args)
    server_settings = dict(arguments.get("server_settings", {}))
    server_settings.setdefault("application_name", f"backfill {name}")
    arguments["server_settings"] = server_settings
    return engine_for(replace(database, connect_args=arguments), poolclass=pool.NullPool)


@asynccontextmanager
async def one_runner(connection: AsyncConnection, name: str) -> AsyncIterator[None]:
    key = state.lock_key(name)
    async with connection.begin():
        standby, locked = (await connection.execute(_LOCK, {"key": key})).one()
    if standby:
        raise BackfillError(
            f"backfill {name}: this server is a read-only standby; backfills run on the primary"
        )
    if not locked:
        _, holder = await connection.run_sync(lambda sync: lock_holder(sync, True, key))
        raise BackfillError(
            f"backfill {name} is already running: {holder} holds its lock; this run stops "
            "(one runner per backfill; `status` shows its progress)"
        )
    try:
        yield
    finally:
        if not connection.invalidated:
            async with connection.begin():
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
