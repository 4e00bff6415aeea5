"""How one `alembic` run meets PostgreSQL: which connection, one runner at a time,
bounded waits, and the refusals. alembic/env.py calls `run_offline` or `run_online`.

Template-owned: `copier update` keeps this file current.

Serialising a run. On a connection of its own (the usual case) a run takes a
session-level advisory lock, so the lock and the timeouts (plain `SET`) outlast
the COMMIT that each `autocommit_block()` makes. Waiting runners poll
`pg_try_advisory_lock` between sleeps rather than blocking in `pg_advisory_lock`:
a blocked waiter holds a snapshot, which `CREATE INDEX CONCURRENTLY` in the
running migration must wait for, and PostgreSQL ends that cycle as a deadlock.
Through a transaction-mode pooler, and on a connection handed in inside the
caller's transaction, session state would leak to other clients or outlive a
rollback: there the lock and timeouts are transaction-scoped, and a revision's
`autocommit_block()` is refused before anything is applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from .autogenerate import ENUM_LIBRARY_IMPORT
from .errors import describe_database_error
from .session import create_migration_engine
from .settings import DatabaseSettings, MigrationSettings, settings_error_line

logger = logging.getLogger("alembic.env")  # under alembic.ini's `alembic` logger

# Concurrent runs on one database (replicas starting together) queue on this key.
MIGRATION_LOCK_KEY = 0x616C656D  # "alem"
LOCK_POLL_SECONDS = 0.2


def run_offline(options: dict[str, Any]) -> None:
    """`alembic upgrade --sql`: writes SQL and needs no database, not even a URL."""
    settings = load_settings(MigrationSettings)
    context.configure(
        dialect_name="postgresql",
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **options,
    )
    # Plain SETs, so whoever applies the script by hand gets the same bounds, and
    # they hold past the COMMIT of an autocommit block.
    lock_timeout, statement_timeout = timeout_values(settings)
    context.execute(f"SET lock_timeout = '{lock_timeout}'")
    context.execute(f"SET statement_timeout = '{statement_timeout}'")
    with context.begin_transaction():
        context.run_migrations()


def run_online(
    options: dict[str, Any],
    settings_factory: Callable[[], DatabaseSettings],
    autogenerate_options: Callable[[], dict[str, Any]],
) -> None:
    """Migrate through DATABASE_MIGRATION_URL (or DATABASE_URL), or what the caller handed in.

    A connection handed in through `config.attributes["connection"]` (Alembic's
    cookbook; test fixtures) is used instead: a Connection, an AsyncEngine, or
    anything whose `connect()` gives a Connection (an Engine, pytest-alembic's wrapper).
    """
    handed_in = context.config.attributes.get("connection")
    # A handed-in connection needs no DATABASE_URL: only the timeouts are read then.
    settings = load_settings(settings_factory if handed_in is None else MigrationSettings)
    run = Run(options, settings, autogenerate_options)
    url: URL | None = None
    try:
        if handed_in is None:
            assert isinstance(settings, DatabaseSettings)
            url = settings.migration_url
            run.through_pooler = settings.migrates_through_pooler
            run_coroutine(run_on_async_engine(create_migration_engine(settings), run))
        elif isinstance(handed_in, Connection):
            run(handed_in)
        elif isinstance(handed_in, AsyncEngine):
            url = handed_in.url
            run_coroutine(run_on_async_engine(handed_in, run))
        elif callable(getattr(handed_in, "connect", None)):
            with handed_in.connect() as connection:
                if not isinstance(connection, Connection):
                    raise CommandError(
                        f"config.attributes['connection'].connect() gave a "
                        f"{type(connection).__name__}, not a Connection"
                    )
                run(connection)
        else:
            raise CommandError(
                "config.attributes['connection'] must be a Connection, an AsyncEngine or "
                f"have a connect() method (an Engine), not {type(handed_in).__name__}; "
                "from async code use `await connection.run_sync(...)` and pass the sync connection"
            )
    except (DBAPIError, OSError) as exc:
        raise CommandError(describe_database_error(exc, url)) from None


class Run:
    """One run of the migrations on a connection: serialised, bounded, then applied."""

    def __init__(
        self,
        options: dict[str, Any],
        settings: MigrationSettings,
        autogenerate_options: Callable[[], dict[str, Any]],
    ) -> None:
        self.options = options
        self.settings = settings
        self.autogenerate_options = autogenerate_options
        self.through_pooler = False

    def __call__(self, connection: Connection) -> None:
        if self.through_pooler or connection.in_transaction():
            self.in_one_transaction(connection)
        else:
            with session_lock(connection, self.settings):
                self.apply(connection)

    def in_one_transaction(self, connection: Connection) -> None:
        # The lock and timeouts end with the transaction: nothing leaks into a
        # pooler's shared server connection or the caller's later transactions.
        self.configure(connection)
        refuse_autocommit_blocks(
            context.get_context(),
            "through a transaction-mode pooler (DATABASE_POOLER=transaction): set "
            "DATABASE_MIGRATION_URL to a direct connection"
            if self.through_pooler
            else "inside the caller's transaction: hand in a connection outside a transaction",
        )
        with context.begin_transaction():
            wait_for_lock(connection, "pg_try_advisory_xact_lock")
            set_timeouts(connection, self.settings, local=True)
            self.run_migrations()

    def apply(self, connection: Connection) -> None:
        self.configure(connection)
        with context.begin_transaction():
            self.run_migrations()

    def run_migrations(self) -> None:
        try:
            context.run_migrations()
        except AttributeError as exc:
            if not any(f"'{name}'" in str(exc) for name in ("add_enum_value", "sync_enum_values")):
                raise
            # Revisions written before v0.3.0 relied on env.py importing the library.
            raise CommandError(
                f"{exc}: that revision uses alembic-postgresql-enum's operations; add "
                f"`{ENUM_LIBRARY_IMPORT}` to its imports"
            ) from None

    def configure(self, connection: Connection) -> None:
        context.configure(connection=connection, **self.options)
        # Only `revision --autogenerate` and `check` set a revision context: they
        # alone compare models, so they alone pay for importing them.
        if "revision_context" in context.get_context().opts:
            context.configure(
                connection=connection, **{**self.options, **self.autogenerate_options()}
            )


@contextmanager
def session_lock(connection: Connection, settings: MigrationSettings) -> Iterator[None]:
    """Hold the migration lock and the timeouts for the whole session, then restore both."""
    previous = wait_for_lock(connection, "pg_try_advisory_lock")
    try:
        set_timeouts(connection, settings, local=False)
        connection.commit()  # so Alembic begins (and may commit) transactions of its own
        yield
    finally:
        # A broken connection has lost its session, the lock with it.
        with suppress(DBAPIError):
            if connection.in_transaction():
                connection.rollback()
            connection.execute(
                text(
                    "SELECT pg_advisory_unlock(:key), set_config('lock_timeout', :lock, false),"
                    " set_config('statement_timeout', :statement, false)"
                ),
                {"key": MIGRATION_LOCK_KEY, "lock": previous[0], "statement": previous[1]},
            )
            connection.commit()


def wait_for_lock(connection: Connection, function: str) -> tuple[str, str]:
    """Poll for the lock; return the session's timeouts as they were. Refuses a standby."""
    owns_transaction = not connection.in_transaction()
    query = text(
        "SELECT pg_is_in_recovery(),"
        f" CASE WHEN pg_is_in_recovery() THEN false ELSE {function}(:key) END,"
        " current_setting('lock_timeout'), current_setting('statement_timeout')"
    )
    waited_since = None
    while True:
        standby, locked, lock_timeout, statement_timeout = connection.execute(
            query, {"key": MIGRATION_LOCK_KEY}
        ).one()
        if owns_transaction:
            connection.commit()  # no snapshot held while waiting (see the module docstring)
        if standby:
            raise CommandError(
                "this server is a read-only standby (pg_is_in_recovery() is true); "
                "migrations run on the primary: point DATABASE_MIGRATION_URL or DATABASE_URL at it"
            )
        if locked:
            if waited_since is not None:
                logger.info("Got the migration lock after %.1f s.", time.monotonic() - waited_since)
            return lock_timeout, statement_timeout
        if waited_since is None:
            waited_since = time.monotonic()
            logger.info("Another migration run holds the lock; waiting for it to finish.")
        time.sleep(LOCK_POLL_SECONDS)


def timeout_values(settings: MigrationSettings) -> tuple[str, str]:
    return (
        f"{int(settings.MIGRATION_LOCK_TIMEOUT_SECONDS * 1000)}ms",
        f"{int(settings.MIGRATION_STATEMENT_TIMEOUT_SECONDS * 1000)}ms",
    )


def set_timeouts(connection: Connection, settings: MigrationSettings, *, local: bool) -> None:
    lock, statement = timeout_values(settings)
    connection.execute(
        text(
            "SELECT set_config('lock_timeout', :lock, :local),"
            " set_config('statement_timeout', :statement, :local)"
        ),
        {"lock": lock, "statement": statement, "local": local},
    )


def refuse_autocommit_blocks(migration_context: MigrationContext, where: str) -> None:
    """Make `autocommit_block()` fail before it commits: the run rolls back whole."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise CommandError(
            f"a revision uses autocommit_block(), which cannot run {where}; "
            "nothing of this run was applied"
        )

    migration_context.autocommit_block = refuse  # type: ignore[method-assign]


def load_settings(factory: Callable[[], MigrationSettings]) -> MigrationSettings:
    try:
        return factory()
    except ValidationError as exc:
        raise CommandError(settings_error_line(exc)) from None


async def run_on_async_engine(engine: AsyncEngine, run: Callable[[Connection], None]) -> None:
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run)
    finally:
        # Always disposed, injected engines included: a pool must not outlive its loop.
        await engine.dispose()


def run_coroutine(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    # Called from code that already runs a loop (app start-up, async tests), where
    # asyncio.run() is refused: run on a worker thread with a loop of its own.
    from concurrent.futures import ThreadPoolExecutor  # only this path needs it

    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(asyncio.run, coroutine).result()
