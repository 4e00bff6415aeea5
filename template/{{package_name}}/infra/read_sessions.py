"""Read-only sessions: on a streaming standby when DATABASE_READ_URL names one.

Template-owned: `copier update` keeps this file current.

Every read transaction is READ ONLY (`BEGIN READ ONLY`), on the standby and on
the primary alike, so a write through a read session fails at once with the
server's "cannot execute INSERT in a read-only transaction" (SQLSTATE 25006)
wherever the read went. Without DATABASE_READ_URL there is no second engine:
reads use the primary's pool.

A read session for the standby takes its connection when it opens, so the choice of
server is made before the first query: a standby that cannot be reached (or is
further behind than DATABASE_READ_MAX_LAG_SECONDS) is skipped for
DATABASE_READ_RETRY_SECONDS, during which reads go to the primary (or fail at once with ReplicaUnavailable,
under DATABASE_READ_STRICT) without waiting on it; then one read tries it again.
One log line when the standby goes, one when it is back.

READ ONLY costs nothing over a read-write session: a `ReadOnlySession` marks the
driver's connection read-only when it takes it (asyncpg then begins with `BEGIN READ
ONLY` instead of `BEGIN`), and the pool marks it read-write again when it gets it
back. SQLAlchemy's `postgresql_readonly` execution option does the same for about
17% more CPU per lookup (bench/ README); `default_transaction_read_only` set at
connect would need a pool of its own on the primary, and a transaction pooler
refuses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import ConnectionPoolEntry

from .engines import create_read_engine
from .errors import describe_database_error
from .settings import DatabaseSettings

logger = logging.getLogger(__name__)

# Replay lag in seconds, 0 when the standby has replayed all it received. The
# replay timestamp alone would grow on an idle primary, where nothing is behind.
# On a primary both LSNs are NULL: lag 0.
LAG_QUERY = (
    "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)
ReplicaState = Literal["up", "down", "none"]


class ReplicaUnavailable(Exception):
    """DATABASE_READ_STRICT is set and the standby cannot serve reads now."""


class ReadOnlySession(Session):
    """A session whose every transaction is READ ONLY, on any engine that
    `read_only_sessionmaker` has prepared."""


# `readonly` on SQLAlchemy's asyncpg adapter is what its dialect's set_readonly()
# sets and what its BEGIN reads, sent with the session's first statement.
@event.listens_for(ReadOnlySession, "after_begin")
def _begin_read_only(
    session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    adapter: Any = connection.connection.dbapi_connection
    adapter.readonly = True


def _read_write_again(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    if dbapi_connection is not None:  # None: invalidated, never handed out again
        dbapi_connection.readonly = False


def read_only_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Read-only sessions on `engine`'s pool, which hands its connections back read-write."""
    pool = engine.sync_engine.pool
    if not event.contains(pool, "checkin", _read_write_again):
        event.listen(pool, "checkin", _read_write_again)
    return async_sessionmaker(engine, sync_session_class=ReadOnlySession, expire_on_commit=False)


class ReadSessions:
    """Opens read-only sessions; one per process, beside the primary's engine."""

    def __init__(self, primary: AsyncEngine, settings: DatabaseSettings) -> None:
        # Sessions on the primary share the app's pool: no connection of their own.
        self.primary = primary
        self.replica = create_read_engine(settings)
        self._on_primary = read_only_sessionmaker(primary)
        self._on_replica = None if self.replica is None else read_only_sessionmaker(self.replica)
        self.strict = settings.DATABASE_READ_STRICT
        self.retry_seconds = settings.DATABASE_READ_RETRY_SECONDS
        self.max_lag_seconds = settings.DATABASE_READ_MAX_LAG_SECONDS
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._reason = ""

    @asynccontextmanager
    async def session(self, *, primary: bool = False) -> AsyncIterator[AsyncSession]:
        """A read-only session; `primary=True` when it must see a write just made."""
        async with await self.open(primary=primary) as session:
            yield session

    async def open(self, *, primary: bool = False) -> AsyncSession:
        """A read-only session (close it): on the standby, its connection already taken,
        or on the primary, which takes one at its first query as SessionDep's does."""
        if primary or self._on_replica is None:
            return self._on_primary()
        session = await self._replica_session()
        if session is not None:
            return session
        if self.strict:
            raise ReplicaUnavailable(f"read replica unavailable: {self._reason}")
        return self._on_primary()

    async def replica_state(self) -> ReplicaState:
        """Up when reads go to the standby now, down while they skip it (for /health)."""
        if self._on_replica is None:
            return "none"
        session = await self._replica_session()
        if session is None:
            return "down"
        await session.close()
        return "up"

    async def dispose(self) -> None:
        """Closes the standby's pool; the primary's engine belongs to the caller."""
        if self.replica is not None:
            await self.replica.dispose()

    async def _replica_session(self) -> AsyncSession | None:
        """A session on the standby with its connection taken, or None (down, behind)."""
        assert self.replica is not None and self._on_replica is not None
        now = time.monotonic()
        if self._down_since is not None:
            if now < self._retry_at:
                return None
            self._retry_at = now + self.retry_seconds  # one read tries; the others skip it
        session = self._on_replica()
        try:
            connection = await session.connection()
        except Exception as exc:  # refused, timed out, or unforeseen: reads go elsewhere
            await session.close()
            self._down(describe_database_error(exc, self.replica.url))
            return None
        try:
            lag = await self._lag(connection)
        except Exception as exc:  # asyncpg's own errors too: the query runs on its connection
            await connection.invalidate()
            await session.close()
            self._down(describe_database_error(exc, self.replica.url))
            return None
        if lag > self.max_lag_seconds:
            await session.close()
            self._down(
                f"{lag:.1f} s behind the primary "
                f"(DATABASE_READ_MAX_LAG_SECONDS={self.max_lag_seconds:g})"
            )
            return None
        if self._down_since is not None:
            logger.warning(
                "read replica back after %.1f s; reads go to it again",
                time.monotonic() - self._down_since,
            )
            self._down_since = None
        return session

    async def _lag(self, connection: AsyncConnection) -> float:
        if not self.max_lag_seconds:
            return 0.0  # no bound, no query
        # On the driver's connection, before the session's BEGIN READ ONLY: one round
        # trip, outside any transaction.
        driver: Any = (await connection.get_raw_connection()).driver_connection  # asyncpg's
        return float(await driver.fetchval(LAG_QUERY) or 0)

    def _down(self, reason: str) -> None:
        self._reason = reason
        self._retry_at = time.monotonic() + self.retry_seconds
        if self._down_since is not None:
            return  # already said so
        self._down_since = time.monotonic()
        then = "reads fail (DATABASE_READ_STRICT)" if self.strict else "reads go to the primary"
        logger.warning(
            "read replica unusable: %s; %s, trying it again every %g s",
            reason,
            then,
            self.retry_seconds,
        )
