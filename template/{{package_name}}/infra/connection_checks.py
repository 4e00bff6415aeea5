"""What the pool checks before it hands out a connection (DATABASE_POOL_PRE_PING).

Template-owned: `copier update` keeps this file current.

SQLAlchemy's own `pool_pre_ping` costs three round trips on every checkout with
asyncpg (BEGIN, `;`, ROLLBACK), as many as a one-query request itself. Instead,
as pgx's pool does for Go:

- a connection the server or pooler has closed (a restart, a failover,
  `pg_terminate_backend`, an idle timeout) is replaced, and with it every
  connection older than now: asyncpg has already seen the close, so this costs no
  round trip, and the first request after a restart gets a new connection;
- a connection idle longer than DATABASE_POOL_PRE_PING_IDLE_SECONDS (where a
  firewall or load balancer may have dropped it without a word) is pinged first,
  with `SELECT 1` on the simple protocol: one round trip, safe through a
  transaction-mode pooler, bounded by the connect timeout. If it fails, the
  connection is replaced.

A connection in steady use is handed out as it is: a request costs its own
round trips only.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError, InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

# Where a connection's last check-in time is kept (the record's `info` is
# cleared whenever it reconnects, so a fresh connection has none: no ping).
IDLE_SINCE = "idle_since"


def check_before_checkout(engine: AsyncEngine, *, idle_seconds: float, timeout: float) -> None:
    """Check each connection `engine`'s pool hands out, as this module describes."""

    def checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    def checkout(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        if dbapi_connection.driver_connection.is_closed():
            # The pool replaces it, and every connection made before now.
            raise InvalidatePoolError("the server closed the connection")
        idle_since = record.info.get(IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since <= idle_seconds:
            return
        try:
            dbapi_connection.run_async(lambda driver: driver.execute("SELECT 1", timeout=timeout))
        except Exception as exc:  # any failure: this connection is not to be trusted
            if dbapi_connection.driver_connection.is_closed():
                raise InvalidatePoolError(f"ping failed: {exc!r}") from exc
            raise DisconnectionError(f"ping failed: {exc!r}") from exc

    event.listen(engine.sync_engine.pool, "checkin", checkin)
    event.listen(engine.sync_engine.pool, "checkout", checkout)
