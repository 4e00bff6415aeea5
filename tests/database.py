"""SQL against the test servers: statements, what a database holds, locks held by
another connection. Shared by the template's tests (and bench/)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from uuid import uuid4

from sqlalchemy import pool, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

# What a database's public schema holds, by kind (see `schema`).
Schema = dict[str, set[tuple[Any, ...]]]


def to_asyncpg(url: str | URL) -> URL:
    return make_url(url).set(drivername="postgresql+asyncpg")


async def _admin(server: URL, *statements: str) -> list[Any]:
    engine = create_async_engine(server, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    results: list[Any] = []
    try:
        async with engine.connect() as connection:
            for statement in statements:
                result = await connection.execute(text(statement))
                results.append(result.fetchall() if result.returns_rows else None)
    finally:
        await engine.dispose()
    return results


def sql(url: URL, *statements: str) -> list[Any]:
    """Run statements in autocommit mode; SELECTs return their rows."""
    return asyncio.run(_admin(url, *statements))


@contextmanager
def fresh_database(server: URL) -> Iterator[URL]:
    """A new, empty database on the server, dropped (connections and all) afterwards."""
    name = f"t_{uuid4().hex[:16]}"
    sql(server, f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name)
    finally:
        sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def until_connected(others: int, seconds: float = 30) -> str:
    """A statement that returns once `others` more sessions are connected to its database
    (at most `seconds`): a revision that runs it keeps a race open until every
    concurrent run has arrived. A fixed sleep does not: on a busy machine one
    interpreter starts a second after another, and the first run was already done.
    (pg_stat_activity is read once per transaction unless its snapshot is cleared.)"""
    return (
        "DO $$ BEGIN WHILE (SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid())"
        f" < {others} AND clock_timestamp() < now() + interval '{seconds} s'"
        " LOOP PERFORM pg_sleep(0.02); PERFORM pg_stat_clear_snapshot(); END LOOP; END $$"
    )


def table_names(url: URL) -> set[str]:
    rows = sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")[0]
    return {row[0] for row in rows}


def applied_versions(url: URL) -> list[str]:
    if "alembic_version" not in table_names(url):
        return []
    return [row[0] for row in sql(url, "SELECT version_num FROM alembic_version")[0]]


def hold_lock(
    url: URL, statement: str, acquired: threading.Event, release: threading.Event
) -> None:
    """Run `statement` (LOCK TABLE, SELECT ... FOR UPDATE) in a transaction kept open
    until `release` is set."""

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(statement))
                acquired.set()
                while not release.is_set():
                    await asyncio.sleep(0.02)
        finally:
            await engine.dispose()

    asyncio.run(run())


@contextmanager
def locked_by(url: URL, statement: str) -> Iterator[None]:
    """The locks `statement` takes, held by another connection inside the block."""
    acquired, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_lock, args=(url, statement, acquired, release))
    holder.start()
    try:
        assert acquired.wait(30)
        yield
    finally:
        release.set()
        holder.join()


def table_locked(url: URL, table: str) -> AbstractContextManager[None]:
    """An ACCESS EXCLUSIVE lock on `table`, held by another connection inside the block."""
    return locked_by(url, f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")


def advisory_locks(url: URL) -> int:
    """Advisory locks held on the server (the migration lock is one)."""
    return int(sql(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0][0])


def index_validity(url: URL, table: str) -> dict[str, bool]:
    """Index name -> valid (an INVALID one is what a failed concurrent build leaves)."""
    rows = sql(
        url,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        f" WHERE i.indrelid = '{table}'::regclass",
    )[0]
    return dict(rows)


def schema(url: URL) -> Schema:
    """What the public schema holds: columns, constraints, indexes and ENUM types."""
    columns, constraints, indexes, enums = sql(
        url,
        "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,"
        " column_default FROM information_schema.columns WHERE table_schema = 'public'",
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)"
        " FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid"
        " WHERE t.typnamespace = 'public'::regnamespace GROUP BY t.typname",
    )
    return {
        "columns": {tuple(row) for row in columns},
        "constraints": {tuple(row) for row in constraints},
        "indexes": {tuple(row) for row in indexes},
        "enums": {tuple(row) for row in enums},
    }
