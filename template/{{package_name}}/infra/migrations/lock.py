"""One migration run at a time per database, within the run's timeouts. Template-owned.

On a connection of its own (the usual case) a run takes a session-level advisory
lock, so the lock and the timeouts (plain `SET`) outlast the COMMIT that each
`autocommit_block()` makes. Waiting runners poll `pg_try_advisory_lock` between
sleeps rather than blocking in `pg_advisory_lock`: a blocked waiter holds a
snapshot, which `CREATE INDEX CONCURRENTLY` in the running migration must wait
for, and PostgreSQL ends that cycle as a deadlock.

Through a transaction-mode pooler, and on a connection handed in inside the
caller's transaction, session state would leak to other clients or outlive a
rollback: there the lock and timeouts are transaction-scoped, and a revision's
`autocommit_block()` is refused before anything is applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..database_url import TRANSACTION_POOLER
from ..errors import CLEANUP_ERRORS
from ..settings import MigrationSettings, settings_error_line
from .output import database_failures_described

logger = logging.getLogger("alembic.env")  # under alembic.ini's `alembic` logger

# Concurrent runs on one database (replicas starting together) queue on this key.
MIGRATION_LOCK_KEY = 0x616C656D  # "alem"
LOCK_POLL_SECONDS = 0.2


@contextmanager
def migration_lock(connection: Connection) -> Iterator[None]:
    """Hold the migration lock and the run's lock and statement timeouts around the
    block; refuse a read-only standby. Configure Alembic inside the block."""
    settings = read_migration_settings()
    if connection.in_transaction():
        # Handed in inside the caller's transaction, which the caller ends.
        with _autocommit_blocks_refused(
            "inside the caller's transaction: hand in a connection outside a transaction"
        ):
            _hold_for_transaction(connection, settings)
            yield
    elif connection.get_execution_options().get(TRANSACTION_POOLER):
        with (
            _autocommit_blocks_refused(
                "through a transaction-mode pooler (DATABASE_POOLER=transaction): set "
                "DATABASE_MIGRATION_URL to a direct connection"
            ),
            connection.begin(),  # Alembic runs inside it, and it commits at the end
        ):
            _hold_for_transaction(connection, settings)
            yield
    else:
        previous = _wait_for_lock(connection, "pg_try_advisory_lock", settings)
        try:
            _set_timeouts(connection, settings, local=False)
            connection.commit()  # so Alembic begins (and may commit) transactions of its own
            yield
        finally:
            _release_session_lock(connection, previous)


def write_timeouts_into_script() -> None:
    """`alembic upgrade --sql`: plain SETs at the top of the script, so whoever applies
    it gets the same bounds, and they hold past the COMMIT of an autocommit block."""
    lock_timeout, statement_timeout = _timeout_values(read_migration_settings())
    context.execute(f"SET lock_timeout = '{lock_timeout}'")
    context.execute(f"SET statement_timeout = '{statement_timeout}'")


def read_migration_settings() -> MigrationSettings:
    """MIGRATION_* from the environment and .env; one line if one is invalid."""
    try:
        return MigrationSettings()
    except ValidationError as exc:
        raise CommandError(settings_error_line(exc)) from None


def _hold_for_transaction(connection: Connection, settings: MigrationSettings) -> None:
    # The lock and timeouts end with the transaction: nothing leaks into a
    # pooler's shared server connection or the caller's later transactions.
    _wait_for_lock(connection, "pg_try_advisory_xact_lock", settings)
    _set_timeouts(connection, settings, local=True)


def _release_session_lock(connection: Connection, previous: tuple[str, str]) -> None:
    """Unlock and restore the session's timeouts; a broken connection has lost its
    session, the lock with it, so a failure here must not hide the run's own error."""
    try:
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
    except CLEANUP_ERRORS:
        logger.debug("migration lock not released: the connection is gone", exc_info=True)


def _wait_for_lock(
    connection: Connection, function: str, settings: MigrationSettings
) -> tuple[str, str]:
    """Poll for the lock, for at most MIGRATION_LOCK_WAIT_SECONDS (0: no limit); return
    the session's timeouts as they were. Refuses a standby."""
    waiting = "while waiting for the migration lock"
    with database_failures_described(connection.engine.url, waiting):
        return _poll_for_lock(connection, function, settings.MIGRATION_LOCK_WAIT_SECONDS)


def _poll_for_lock(connection: Connection, function: str, bound: float) -> tuple[str, str]:
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
            _, holder = lock_holder(connection, owns_transaction)
            logger.info(
                "Another migration run holds the lock: %s; waiting for it to finish%s.",
                holder,
                f", for at most {bound:g} s (MIGRATION_LOCK_WAIT_SECONDS)" if bound else "",
            )
        waited = time.monotonic() - waited_since
        if bound and waited >= bound:
            pid, holder = lock_holder(connection, owns_transaction)
            if pid is not None:  # else it was let go just now: try again
                raise CommandError(
                    f"gave up after waiting {waited:.1f} s for the migration lock "
                    f"(MIGRATION_LOCK_WAIT_SECONDS={bound:g}); {holder} holds it. If that run "
                    f"is hung, end it (SELECT pg_terminate_backend({pid})) and run again; if "
                    "it is still migrating, wait for it or raise MIGRATION_LOCK_WAIT_SECONDS"
                )
        time.sleep(
            min(LOCK_POLL_SECONDS, max(bound - waited, 0.01)) if bound else LOCK_POLL_SECONDS
        )


def lock_holder(
    connection: Connection, owns_transaction: bool, key: int = MIGRATION_LOCK_KEY
) -> tuple[int | None, str]:
    """(pid, a description) of the session holding the advisory lock `key` (the
    migration lock; a backfill's, infra/backfill/): from pg_locks (an advisory lock
    on a bigint key shows as classid = high, objid = low 32 bits) and
    pg_stat_activity, whose details other roles see only with pg_read_all_stats."""
    row = connection.execute(
        _HOLDER_QUERY, {"classid": key >> 32, "objid": key & 0xFFFFFFFF}
    ).first()
    if owns_transaction:
        connection.commit()
    if row is None:
        return None, "no session"
    pid, application, address, port, connected, state, in_state = row
    details = [f"application_name '{application}'"] if application else []
    if address is not None:
        details.append(f"client {address}:{port}")
    elif connected is not None:
        details.append("client on a Unix socket")
    if connected is not None:
        details.append(f"connected {connected:.0f} s ago")
    if state is not None and in_state is not None:
        details.append(f"{state} for {in_state:.0f} s")
    return pid, f"pid {pid}" + (f" ({', '.join(details)})" if details else "")


_HOLDER_QUERY = text(
    "SELECT l.pid, a.application_name, host(a.client_addr), a.client_port,"
    " extract(epoch FROM now() - a.backend_start)::float8, a.state,"
    " extract(epoch FROM now() - a.state_change)::float8"
    " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.classid = :classid AND l.objid = :objid"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " LIMIT 1"
)


def _timeout_values(settings: MigrationSettings) -> tuple[str, str]:
    return (
        f"{int(settings.MIGRATION_LOCK_TIMEOUT_SECONDS * 1000)}ms",
        f"{int(settings.MIGRATION_STATEMENT_TIMEOUT_SECONDS * 1000)}ms",
    )


def _set_timeouts(connection: Connection, settings: MigrationSettings, *, local: bool) -> None:
    lock, statement = _timeout_values(settings)
    connection.execute(
        text(
            "SELECT set_config('lock_timeout', :lock, :local),"
            " set_config('statement_timeout', :statement, :local)"
        ),
        {"lock": lock, "statement": statement, "local": local},
    )


@contextmanager
def _autocommit_blocks_refused(where: str) -> Iterator[None]:
    """`autocommit_block()` fails before it commits anything: the run rolls back whole.

    Alembic builds its MigrationContext inside the block (env.py's configure), so
    the refusal is set on the class for the block's duration.
    """

    @contextmanager
    def refuse(self: MigrationContext) -> Iterator[None]:
        raise CommandError(
            f"a revision uses autocommit_block(), which cannot run {where}; "
            "nothing of this run was applied"
        )
        yield  # a generator, as the method it stands in for

    original: Any = MigrationContext.autocommit_block
    MigrationContext.autocommit_block = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        MigrationContext.autocommit_block = original  # type: ignore[method-assign]
