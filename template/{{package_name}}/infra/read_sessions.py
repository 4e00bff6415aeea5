"""Read-only sessions: on a streaming standby when DATABASE_READ_URL names one.

Template-owned: `copier update` keeps this file current.

Every read transaction is READ ONLY (`postgresql_readonly`), on the standby and on
the primary alike, so a write through a read session fails at once with the
server's "cannot execute INSERT in a read-only transaction" (SQLSTATE 25006)
wherever the read went. Without DATABASE_READ_URL there is no second engine:
reads use the primary's pool.

A read session takes its connection when it opens, so the choice of server is
made before the first query: a standby that cannot be reached (or is further
behind than DATABASE_READ_MAX_LAG_SECONDS) is skipped for DATABASE_READ_RETRY_SECONDS,
during which reads go to the primary (or fail at once with ReplicaUnavailable,
under DATABASE_READ_STRICT) without waiting on it; then one read tries it again.
One log line when the standby goes, one when it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

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


class ReadSessions:
    """Opens read-only sessions; one per process, beside the primary's engine."""

    def __init__(self, primary: AsyncEngine, settings: DatabaseSettings) -> None:
        # Options on an engine share its pool: no connection of their own.
        self.primary = primary.execution_options(postgresql_readonly=True)
        replica = create_read_engine(settings)
        self.replica: AsyncEngine | None = None
        if replica is not None:
            self.replica = replica.execution_options(postgresql_readonly=True)
        self.strict = settings.DATABASE_READ_STRICT
        self.retry_seconds = settings.DATABASE_READ_RETRY_SECONDS
        self.max_lag_seconds = settings.DATABASE_READ_MAX_LAG_SECONDS
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._reason = ""

    @asynccontextmanager
    async def session(self, *, primary: bool = False) -> AsyncIterator[AsyncSession]:
        """A read-only session; `primary=True` when it must see a write just made."""
        connection = await self.connect(primary=primary)
        try:
            async with AsyncSession(bind=connection, expire_on_commit=False) as session:
                yield session
        finally:
            await connection.close()

    async def connect(self, *, primary: bool = False) -> AsyncConnection:
        if primary or self.replica is None:
            return await self.primary.connect()
        connection = await self._replica_connection()
        if connection is not None:
            return connection
        if self.strict:
            raise ReplicaUnavailable(f"read replica unavailable: {self._reason}")
        return await self.primary.connect()

    async def replica_state(self) -> ReplicaState:
        """Up when reads go to the standby now, down while they skip it (for /health)."""
        if self.replica is None:
            return "none"
        connection = await self._replica_connection()
        if connection is None:
            return "down"
        await connection.close()
        return "up"

    async def dispose(self) -> None:
        """Closes the standby's pool; the primary's engine belongs to the caller."""
        if self.replica is not None:
            await self.replica.dispose()

    async def _replica_connection(self) -> AsyncConnection | None:
        assert self.replica is not None
        now = time.monotonic()
        if self._down_since is not None:
            if now < self._retry_at:
                return None
            self._retry_at = now + self.retry_seconds  # one read tries; the others skip it
        try:
            connection = await self.replica.connect()
        except Exception as exc:  # refused, timed out, or unforeseen: reads go elsewhere
            self._down(describe_database_error(exc, self.replica.url))
            return None
        try:
            lag = await self._lag(connection)
        except Exception as exc:  # asyncpg's own errors too: the query runs on its connection
            await connection.invalidate()
            self._down(describe_database_error(exc, self.replica.url))
            return None
        if lag > self.max_lag_seconds:
            await connection.close()
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
        return connection

    async def _lag(self, connection: AsyncConnection) -> float:
        if not self.max_lag_seconds:
            return 0.0  # no bound, no query
        # On the driver's connection, outside any transaction: one round trip, and
        # the session still begins (READ ONLY) transactions of its own.
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
