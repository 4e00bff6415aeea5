"""Each backfill's state, in a table of its own: cursor, rows, status, timings.

Template-owned. The table lives in the `backfill` schema, which autogenerate and
`alembic check` do not compare (unless migration_hooks.py sets include_schemas:
then hide it there). It is made on first use, under a transaction-scoped advisory
lock so that two runners starting together do not race on CREATE ... IF NOT EXISTS.

The cursor (the last key done, as text) moves in the transaction of the batch
that did the rows, so a run killed at any point resumes right after the last
committed batch.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SCHEMA = "backfill"
TABLE = f"{SCHEMA}.state"
# Advisory lock keys (bigint): high 32 bits "bf", low 32 bits per backfill.
_PREFIX = 0x6266 << 32
CREATE_KEY = _PREFIX  # making the table
_CREATE = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        name text PRIMARY KEY,
        status text NOT NULL,
        cursor text,
        rows_done bigint NOT NULL DEFAULT 0,
        rows_changed bigint NOT NULL DEFAULT 0,
        rows_total bigint,
        batches bigint NOT NULL DEFAULT 0,
        batch_size integer,
        busy_seconds double precision NOT NULL DEFAULT 0,
        started_at timestamptz,
        updated_at timestamptz,
        finished_at timestamptz,
        last_error text
    )""",
)
COLUMNS = (
    "name, status, cursor, rows_done, rows_changed, rows_total, batches, batch_size,"
    " busy_seconds, started_at, updated_at, finished_at, last_error"
)


def lock_key(name: str) -> int:
    """A backfill's advisory lock: one runner at a time, on any number of pods."""
    return _PREFIX | (zlib.crc32(name.encode()) or 1)


@dataclass
class State:
    name: str
    status: str
    cursor: str | None
    rows_done: int
    rows_changed: int
    rows_total: int | None
    batches: int
    batch_size: int | None
    busy_seconds: float
    started_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None
    last_error: str | None


async def table_exists(connection: AsyncConnection) -> bool:
    found = await connection.scalar(text(f"SELECT to_regclass('{TABLE}') IS NOT NULL"))
    return bool(found)


async def ensure_table(connection: AsyncConnection) -> None:
    """Make the schema and table unless they are there (needs CREATE on the database once)."""
    async with connection.begin():
        if await table_exists(connection):
            return
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CREATE_KEY})
        for statement in _CREATE:
            await connection.execute(text(statement))


async def load(connection: AsyncConnection, name: str) -> State | None:
    row = (
        await connection.execute(
            text(f"SELECT {COLUMNS} FROM {TABLE} WHERE name = :name"), {"name": name}
        )
    ).first()
    return None if row is None else State(*row)


async def load_all(connection: AsyncConnection) -> list[State]:
    if not await table_exists(connection):
        return []
    rows = await connection.execute(text(f"SELECT {COLUMNS} FROM {TABLE} ORDER BY name"))
    return [State(*row) for row in rows]


async def start(connection: AsyncConnection, name: str, rows_total: int | None) -> State:
    """The backfill's row, made on its first run; marked running (again)."""
    async with connection.begin():
        await connection.execute(
            text(
                f"INSERT INTO {TABLE} (name, status, rows_total, started_at, updated_at)"
                " VALUES (:name, 'running', :total, now(), now())"
                " ON CONFLICT (name) DO UPDATE SET updated_at = now(), last_error = NULL,"
                f" status = CASE WHEN {TABLE}.status = 'finished' THEN 'finished'"
                " ELSE 'running' END,"
                f" rows_total = CASE WHEN {TABLE}.status = 'finished' THEN {TABLE}.rows_total"
                f" ELSE greatest(:total, {TABLE}.rows_done) END"
            ),
            {"name": name, "total": rows_total},
        )
        state = await load(connection, name)
    assert state is not None
    return state


async def advance(
    connection: AsyncConnection,
    name: str,
    *,
    cursor: str,
    rows: int,
    changed: int,
    batch_size: int,
    seconds: float,
) -> None:
    """Inside the batch's transaction: its rows are done, the cursor after them."""
    await connection.execute(
        text(
            f"UPDATE {TABLE} SET cursor = :cursor, rows_done = rows_done + :rows,"
            " rows_changed = rows_changed + :changed, batches = batches + 1,"
            " batch_size = :size, busy_seconds = busy_seconds + :seconds, updated_at = now()"
            " WHERE name = :name"
        ),
        {
            "name": name,
            "cursor": cursor,
            "rows": rows,
            "changed": changed,
            "size": batch_size,
            "seconds": seconds,
        },
    )


async def mark(
    connection: AsyncConnection, name: str, status: str, error: str | None = None
) -> None:
    """A status of its own transaction: held, running, failed (with the line), finished."""
    finished = ", finished_at = now()" if status == "finished" else ""
    async with connection.begin():
        await connection.execute(
            text(
                f"UPDATE {TABLE} SET status = :status, last_error = :error,"
                f" updated_at = now(){finished} WHERE name = :name"
            ),
            {"name": name, "status": status, "error": error},
        )


async def runner_pids(connection: AsyncConnection, names: list[str]) -> dict[str, int]:
    """Which of these backfills a runner holds the lock of, and its pid."""
    keys = {lock_key(name): name for name in names}
    rows = await connection.execute(
        text(
            "SELECT (classid::bigint << 32) | objid::bigint, pid FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    )
    return {keys[key]: pid for key, pid in rows if key in keys}


def as_dict(state: State) -> dict[str, Any]:
    return dict(vars(state))
