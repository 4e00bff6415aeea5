"""Async engines and sessions, built from the settings' parsed URLs. Template-owned.

A migration run's engine is made in alembic/env.py (`async_engine_from_config`,
as in Alembic's own template) from `settings.migration_url`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .connection_checks import check_before_checkout
from .database_url import DatabaseUrl
from .settings import DatabaseSettings
from .stale_statements import retry_stale_statements


def engine_for(
    database: DatabaseUrl,
    *,
    statement_timeout: float = 0,
    hide_parameters: bool = True,
    **engine_options: Any,
) -> AsyncEngine:
    """An engine for any of the service's databases, as its settings parsed it.

    `hide_parameters`: a failed statement's exception and log line show its SQL but
    not its bound values (user data, passwords among them); DATABASE_LOG_PARAMETERS
    turns it off for the app's engines, for debugging.

    A transaction's first statement that another process's migration made stale
    is prepared and run again (stale_statements.py).
    """
    connect_args = dict(database.connect_args)
    if statement_timeout and database.pooler == "transaction":
        # The pooler refuses startup settings: asyncpg cancels on the client side.
        connect_args["command_timeout"] = statement_timeout
    elif statement_timeout:
        server_settings = dict(connect_args.get("server_settings", {}))
        server_settings.setdefault("statement_timeout", f"{int(statement_timeout * 1000)}ms")
        connect_args["server_settings"] = server_settings
    engine = create_async_engine(
        database.sqlalchemy_url,
        connect_args=connect_args,
        hide_parameters=hide_parameters,
        **engine_options,
    )
    retry_stale_statements(engine)
    return engine


def create_app_engine(settings: DatabaseSettings) -> AsyncEngine:
    """The app's engine: one per process; dispose it on shutdown (`await engine.dispose()`)."""
    return _pooled_engine(settings, settings.DATABASE_URL)


def create_read_engine(settings: DatabaseSettings) -> AsyncEngine | None:
    """The standbys' engine (DATABASE_READ_URL), or None: read_sessions.py routes reads to it."""
    if settings.DATABASE_READ_URL is None:
        return None
    return _pooled_engine(settings, settings.DATABASE_READ_URL)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit without lazy IO.
    return async_sessionmaker(engine, expire_on_commit=False)


def _pooled_engine(settings: DatabaseSettings, database: DatabaseUrl) -> AsyncEngine:
    engine = engine_for(
        database,
        statement_timeout=settings.DATABASE_STATEMENT_TIMEOUT_SECONDS,
        pool_size=settings.DATABASE_POOL_SIZE,
        max_overflow=settings.DATABASE_POOL_MAX_OVERFLOW,
        pool_timeout=settings.DATABASE_POOL_TIMEOUT_SECONDS,
        pool_recycle=int(settings.DATABASE_POOL_RECYCLE_SECONDS) or -1,
        hide_parameters=not settings.DATABASE_LOG_PARAMETERS,
    )
    if settings.DATABASE_POOL_PRE_PING:  # not SQLAlchemy's: see connection_checks.py
        timeout = database.connect_args.get("timeout", settings.DATABASE_CONNECT_TIMEOUT_SECONDS)
        check_before_checkout(
            engine, idle_seconds=settings.DATABASE_POOL_PRE_PING_IDLE_SECONDS, timeout=timeout
        )
    return engine
