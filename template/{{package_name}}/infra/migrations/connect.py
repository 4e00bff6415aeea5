"""How a migration run reaches its database. Template-owned.

- `connect_when_reachable(engine)`: the run's connection; the migrate step asks it
  to wait for a database that is not reachable yet.
- `sync_connection(handed_in)`: a connection the caller handed in.
- `run_outside_event_loop(coroutine)`: `asyncio.run()`, also from a running loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from alembic import context
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import DATABASE_ERRORS, describe_database_error, is_not_reachable_yet
from .lock import read_migration_settings
from .output import database_failures_described

logger = logging.getLogger("alembic.env")  # under alembic.ini's `alembic` logger
# Set by the migrate step (`python -m <package>.infra.migrate`): wait for the database.
WAIT_FOR_DATABASE = "wait_for_database"
# Set by the migrate step when it traces (observability=otel): called with the
# run's engine before its first connection.
INSTRUMENT_ENGINE = "instrument_engine"


@asynccontextmanager
async def connect_when_reachable(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """`engine.connect()`; a database failure inside becomes one line naming host:port/db.

    When the run asks (config.attributes["wait_for_database"], the migrate step),
    "not reachable yet" (refused, no socket file, a host name that does not resolve
    yet, starting up) is retried every MIGRATION_WAIT_INTERVAL_SECONDS for up to
    MIGRATION_WAIT_FOR_DATABASE_SECONDS, each wait logged. A wrong password, a
    missing database or a TLS failure fails at once: waiting would not fix them.
    """
    instrument = context.config.attributes.get(INSTRUMENT_ENGINE)
    if instrument is not None:
        instrument(engine)
    try:
        connection = await _first_connection(engine)
    except DATABASE_ERRORS as exc:
        raise CommandError(describe_database_error(exc, engine.url)) from None
    try:
        with database_failures_described(engine.url):
            yield connection
    finally:
        await connection.close()  # on a connection the server dropped, too: no error


@contextmanager
def sync_connection(handed_in: object) -> Iterator[Connection]:
    """The Connection a caller handed in (Alembic's cookbook: from `run_sync`), or the
    one its `connect()` gives (an Engine, pytest-alembic's wrapper)."""
    if isinstance(handed_in, Connection):
        yield handed_in
        return
    connect = getattr(handed_in, "connect", None)
    if not callable(connect):
        raise CommandError(
            "config.attributes['connection'] must be a Connection, an AsyncEngine or "
            f"have a connect() method (an Engine), not {type(handed_in).__name__}; "
            "from async code use `await connection.run_sync(...)` and pass the sync connection"
        )
    with connect() as connection:
        if not isinstance(connection, Connection):
            raise CommandError(
                f"config.attributes['connection'].connect() gave a "
                f"{type(connection).__name__}, not a Connection"
            )
        yield connection


def run_outside_event_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """`asyncio.run(coroutine)`; from code that already runs a loop (app start-up,
    async tests), where asyncio.run() is refused, on a worker thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    from concurrent.futures import ThreadPoolExecutor  # only this path needs it

    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(asyncio.run, coroutine).result()


async def _connect(engine: AsyncEngine) -> AsyncConnection:
    try:
        return await engine.connect()
    except UnicodeError as exc:  # a host name the IDNA codec refuses: no wait cures it
        raise CommandError(describe_database_error(exc, engine.url)) from None


async def _first_connection(engine: AsyncEngine) -> AsyncConnection:
    if not context.config.attributes.get(WAIT_FOR_DATABASE):
        return await _connect(engine)
    settings = read_migration_settings()
    bound = settings.MIGRATION_WAIT_FOR_DATABASE_SECONDS
    started = time.monotonic()
    deadline = started + bound
    attempt = 0
    while True:
        attempt += 1
        try:
            # Each try is bounded by the connect timeout. No try starts after the
            # deadline: the wait ends within the bound plus one connect timeout.
            connection = await _connect(engine)
        except DATABASE_ERRORS as exc:
            reason = describe_database_error(exc, engine.url)
            if not is_not_reachable_yet(exc, engine.url):
                raise CommandError(reason) from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise CommandError(
                    f"{reason} (still not reachable after {time.monotonic() - started:.1f} s, "
                    f"{attempt} {'try' if attempt == 1 else 'tries'}; "
                    f"MIGRATION_WAIT_FOR_DATABASE_SECONDS={bound:g})"
                ) from None
            pause = min(settings.MIGRATION_WAIT_INTERVAL_SECONDS, left)
            logger.info(
                "Database not reachable yet (%s); try %d, next in %.2g s, giving up in %.1f s.",
                reason,
                attempt,
                pause,
                left,
            )
            await asyncio.sleep(pause)
            continue
        if attempt > 1:
            logger.info("Database reachable after %.1f s.", time.monotonic() - started)
        return connection
