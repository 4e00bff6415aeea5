"""Lock timeouts tried again: the run's transaction, or one statement of an
`autocommit_block()`. Template-owned.

A DDL statement waiting for a table lock makes every later query on that table
wait behind it. So a run's `lock_timeout` is short (MIGRATION_LOCK_TIMEOUT_SECONDS),
and what hits it (SQLSTATE 55P03, lock_not_available) is tried again after a pause,
up to MIGRATION_LOCK_RETRIES times, as pgroll and strong_migrations do: the app's
queries wait at most about one lock_timeout at a time, not the whole retry period.

- A transaction is retried whole: PostgreSQL rolled it back and let its table
  locks go for the pause. On a connection of its own the run keeps its
  session-level migration lock meanwhile, so no other run slips in. Inside an
  outer transaction (a transaction-mode pooler, a caller's transaction) each
  attempt is a savepoint: rolling back to it keeps the transaction, and with it
  the transaction-scoped migration lock and timeouts.
- In an `autocommit_block()` each statement commits by itself, so it is retried
  alone. And a `CREATE INDEX CONCURRENTLY` that failed half-way leaves an INVALID
  index that `IF NOT EXISTS` would keep: one of that name on that table is dropped
  before the build (strong_migrations' remove_invalid_indexes).

Pauses: 0.5 s, doubling, at most 30 s, each between half and all of that (jitter:
runners that timed out together do not come back together). A dozen lines rather
than tenacity: a new dependency would have to reach every service's lock file,
and an image installs that with --frozen, so a service updated without `lock`
would fail at its migrate step.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from itertools import count
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import TextClause, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex

from ..errors import CLEANUP_ERRORS
from .autogenerate import autogenerating
from .lock import read_migration_settings
from .output import database_failure, describe_run_failure

logger = logging.getLogger("alembic.env")  # under alembic.ini's `alembic` logger

LOCK_NOT_AVAILABLE = "55P03"
FIRST_PAUSE_SECONDS = 0.5
LONGEST_PAUSE_SECONDS = 30.0
_NAME = r'"(?:[^"]|"")+"|[\w$]+'
# A pattern, compiled on first use (in an autocommit block): other runs never pay for it.
CONCURRENT_INDEX = (
    rf"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<index>{_NAME})\s+ON\s+(?:ONLY\s+)?(?P<table>(?:{_NAME})(?:\.(?:{_NAME}))?)"
)
_INVALID_INDEX = text(
    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i"
    " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE i.indrelid = to_regclass(:table) AND c.relname = :index AND NOT i.indisvalid"
)


def lock_timeout_retries() -> Iterator[AbstractContextManager[None]]:
    """Attempts at the run; call after `context.configure()`:

        for attempt in lock_timeout_retries():
            with attempt, context.begin_transaction():
                context.run_migrations()

    An attempt that failed on a lock timeout is followed by another after a pause,
    each logged in one line; after MIGRATION_LOCK_RETRIES more the run fails in one.
    Any other database failure becomes one line naming the revision being applied.
    """
    migration_context = context.get_context()
    steps = _Steps(migration_context)
    for tries in count(1):
        timed_out: list[DBAPIError] = []
        yield _attempt(migration_context, steps, timed_out)
        if not timed_out:
            return
        then = "rolled back; running the transaction again"
        _pause_or_give_up(timed_out[0], tries, steps.doing(), then)


def retry_pause(tries: int) -> float:
    """Seconds to wait after try number `tries` failed on a lock timeout (the module
    docstring's pauses; the backfill runner, infra/backfill/, uses them too)."""
    longest = min(LONGEST_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2 ** (tries - 1))
    return random.uniform(longest / 2, longest)


def is_lock_timeout(cause: BaseException) -> bool:
    return isinstance(cause, DBAPIError) and (
        getattr(cause.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE
    )


class _Steps:
    """Which revision the run is at. Alembic pulls its steps one at a time from the
    function each command configures (`fn`); wrapped, it says which one runs."""

    def __init__(self, migration_context: MigrationContext) -> None:
        self.current: Any = None
        self.finished = False
        # Alembic's own attribute: should it ever go, failures name no revision.
        steps = getattr(migration_context, "_migrations_fn", None)
        if steps is None:
            return

        def tracked(*args: Any, **kwargs: Any) -> Iterator[Any]:
            self.current, self.finished = None, False
            for step in steps(*args, **kwargs):
                self.current = step
                yield step
            self.current, self.finished = None, True

        migration_context._migrations_fn = tracked

    def doing(self) -> str:
        step = self.current
        if step is not None:
            revision = getattr(getattr(step, "revision", None), "revision", None) or step
            doc = getattr(step, "doc", None)
            verb = "reverting" if getattr(step, "is_downgrade", False) else "applying"
            return f"while {verb} {revision}" + (f" ({doc})" if doc else "")
        if self.finished:
            return "while committing the run"
        if autogenerating():
            return "while comparing the models with the database"
        return ""


@contextmanager
def _attempt(
    migration_context: MigrationContext,
    steps: _Steps,
    timed_out: list[DBAPIError],
) -> Iterator[None]:
    connection = migration_context.connection
    assert connection is not None  # online runs only
    # Inside an outer transaction a lock timeout would abort it whole: a savepoint
    # keeps it (and the transaction-scoped migration lock) for the next attempt.
    savepoint = connection.begin_nested() if connection.in_transaction() else None
    block = migration_context.autocommit_block
    migration_context.autocommit_block = lambda: _statements_retried(  # type: ignore[method-assign]
        block, migration_context, steps
    )
    try:
        yield
        if savepoint is not None:
            savepoint.commit()
    except Exception as exc:
        if savepoint is not None and savepoint.is_active:
            with suppress(*CLEANUP_ERRORS):
                savepoint.rollback()
        cause = None if isinstance(exc, CommandError) else database_failure(exc)
        if cause is None:
            raise  # one line already, or a revision's own bug (the traceback shows where)
        if is_lock_timeout(cause):
            assert isinstance(cause, DBAPIError)
            timed_out.append(cause)
            return
        raise CommandError(
            describe_run_failure(cause, connection.engine.url, steps.doing())
        ) from None
    finally:
        vars(migration_context).pop("autocommit_block", None)


@contextmanager
def _statements_retried(
    block: Callable[[], AbstractContextManager[None]],
    migration_context: MigrationContext,
    steps: _Steps,
) -> Iterator[None]:
    """Alembic's block, in which each statement that times out on a lock is retried alone."""
    with block():
        connection = migration_context.connection
        assert connection is not None
        execute = connection.execute

        def retried(statement: Any, *args: Any, **kwargs: Any) -> Any:
            for tries in count(1):
                try:
                    _drop_invalid_index_before(connection, execute, statement)
                    return execute(statement, *args, **kwargs)
                except DBAPIError as exc:
                    if not is_lock_timeout(exc):
                        raise
                    _pause_or_give_up(exc, tries, steps.doing(), "retrying that statement alone")

        connection.execute = retried  # type: ignore[method-assign]
        try:
            yield
        finally:
            vars(connection).pop("execute", None)


def _drop_invalid_index_before(
    connection: Connection, execute: Callable[..., Any], statement: Any
) -> None:
    """Before CREATE INDEX CONCURRENTLY, drop an INVALID index of that name on that table."""
    if not isinstance(statement, (TextClause, CreateIndex)):
        return
    sql = str(statement.compile(dialect=connection.dialect))
    match = re.match(CONCURRENT_INDEX, sql, re.IGNORECASE)  # re caches the compiled pattern
    if match is None:
        return
    spelled = match["index"]
    name = spelled[1:-1].replace('""', '"') if spelled.startswith('"') else spelled.lower()
    invalid = execute(_INVALID_INDEX, {"table": match["table"], "index": name})
    for (qualified,) in invalid.all():
        logger.warning(
            "Dropping the INVALID index %s, which a failed CREATE INDEX CONCURRENTLY left, "
            "to build it again.",
            qualified,
        )
        connection.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}")


def _pause_or_give_up(cause: DBAPIError, tries: int, doing: str, then: str) -> None:
    """Log one line and sleep before the next try, or fail in one line after the last.

    The settings are read here, not before the run: a run that meets no lock timeout
    (nearly all, and every run at head) does not read them a second time."""
    settings = read_migration_settings()
    statement = " ".join(str(cause.statement or "").split())
    statement = statement if len(statement) <= 100 else statement[:97] + "..."
    where = f"`{statement}`{f' {doing}' if doing else ''}"
    retries = settings.MIGRATION_LOCK_RETRIES
    bounds = (
        f"MIGRATION_LOCK_TIMEOUT_SECONDS={settings.MIGRATION_LOCK_TIMEOUT_SECONDS:g}, "
        f"MIGRATION_LOCK_RETRIES={retries}"
    )
    if tries > retries:
        raise CommandError(
            f"canceling statement due to lock timeout: {where} waited for a lock that another "
            f"session holds, {tries} {'try' if tries == 1 else 'tries'} ({bounds}); find it with "
            "SELECT pid, pg_blocking_pids(pid), query FROM pg_stat_activity while the migration "
            "waits, or run again when that table is quieter"
        )
    pause = retry_pause(tries)
    logger.warning(
        "Lock timeout on %s; %s in %.1f s (try %d of %d; %s).",
        where,
        then,
        pause,
        tries + 1,
        retries + 1,
        bounds,
    )
    time.sleep(pause)
