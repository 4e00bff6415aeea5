"""Statements cached on a warm connection, made stale by another process's DDL.

Template-owned: `copier update` keeps this file current.

SQLAlchemy's asyncpg dialect prepares every statement once per connection and
keeps it. When a migration (a deploy's pre- or post-deploy revisions) changes
what a cached statement returns (`SELECT *` after a column is added, dropped or
renamed; any statement that selects or returns a column whose type changed; a
recreated ENUM), PostgreSQL refuses the statement's next run before running it:
"cached plan must not change result type" (asyncpg's InvalidCachedStatementError)
or "cache lookup failed for type". The dialect then marks every cached statement
of the engine stale, so each connection prepares again, but the statement that
met the error has failed, and its transaction with it (docs/rolling-deploys.md
has the table of which operations do this).

`retry_stale_statements` runs such a statement again, once, when it was the
first of its transaction: nothing else ran in that transaction, and the
statement itself did not run, so rolling the transaction back and starting
again is what the request would have done a moment later. A stale statement
after others in its transaction is not retried: the rollback would lose what
they did (rows they wrote or locked, SET LOCAL, a REPEATABLE READ snapshot),
and whether a statement wrote cannot be told from its text. It fails as before;
the dialect's own invalidation keeps that to the statements in flight when the
first one met the error.

All through documented hooks: SQLAlchemy's `do_execute` events and the execution
context's own `handle_dbapi_exception` and `pre_exec`; asyncpg's
`is_in_transaction()` tells whether the statement opens its transaction (SQLAlchemy's
driver sends BEGIN with a transaction's first statement).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

# PostgreSQL's words when a cached statement names a type a migration dropped.
_TYPE_GONE = "cache lookup failed for type"


def retry_stale_statements(engine: AsyncEngine) -> None:
    """Retry, once, a transaction's first statement that a schema change made stale."""
    sync_engine = engine.sync_engine
    if event.contains(sync_engine, "do_execute", _execute):
        return
    event.listen(sync_engine, "do_execute", _execute)
    event.listen(sync_engine, "do_execute_no_params", _execute_no_params)


def is_stale_statement(exc: BaseException, dialect: Dialect) -> bool:
    """The error PostgreSQL gives a cached statement whose result or types changed."""
    dbapi: Any = dialect.dbapi
    if isinstance(exc, dbapi.InvalidCachedStatementError):
        return True
    return isinstance(exc, dbapi.InternalServerError) and _TYPE_GONE in str(exc)


def _execute(cursor: Any, statement: str, parameters: Any, context: ExecutionContext) -> bool:
    return _run(context, lambda: cursor.execute(statement, parameters))


def _execute_no_params(cursor: Any, statement: str, context: ExecutionContext) -> bool:
    return _run(context, lambda: cursor.execute(statement))


def _run(context: ExecutionContext, execute: Callable[[], object]) -> bool:
    """Execute; once more if the statement was stale and opened its transaction."""
    first = _opens_transaction(context)
    try:
        execute()
    except Exception as exc:
        if not first or not is_stale_statement(exc, context.dialect):
            raise
        _again_after(exc, context)
        execute()
    return True  # executed: SQLAlchemy's own do_execute is skipped


def _opens_transaction(context: ExecutionContext) -> bool:
    """Nothing ran yet in the transaction this statement is part of (or none: autocommit)."""
    driver: Any = context.root_connection.connection.driver_connection  # asyncpg's
    return not driver.is_in_transaction()


def _again_after(exc: Exception, context: ExecutionContext) -> None:
    """Ready the cursor to run its statement again, freshly prepared, in a new transaction."""
    logger.info("statement prepared before a schema change; preparing it again: %s", exc)
    # The dialect marks every connection's cached statements stale, as it does when
    # this error reaches it; pre_exec hands this cursor that mark.
    context.handle_dbapi_exception(exc)
    # Only this failed statement was in the transaction: end it, the driver begins anew.
    context.root_connection.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
    context.pre_exec()
