"""The database layer's settings: URLs, pooler, pool, timeouts, migration bounds.

Template-owned: `copier update` keeps this file current. Add your own settings
to `Settings` in core/config.py, which subclasses `DatabaseSettings`.

Each URL is parsed once, here, into a `DatabaseUrl` (database_url.py) that
carries what the engines need; pydantic's `PostgresDsn` is not used because it
refuses Unix-socket URLs with an empty host (the embedded server's).
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .database_url import DatabaseUrl, Pooler, parse_database_url

# What a transaction-mode pooler passes on at connect time (PgBouncer's list);
# anything else in `options` it refuses with "unsupported startup parameter".
POOLER_STARTUP_PARAMETERS = frozenset({"application_name"})


def settings_error_line(exc: ValidationError) -> str:
    """One readable line for a settings ValidationError, without any input value."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = f"{field} is not set (set it in the environment or in .env)"
        problems.append(message if message.startswith(field) else f"{field}: {message}")
    return "invalid settings: " + "; ".join(problems)


def _url(value: object, info: ValidationInfo) -> DatabaseUrl:
    return parse_database_url(value, str(info.field_name))


def _optional_url(value: object, info: ValidationInfo) -> DatabaseUrl | None:
    return None if value is None or value == "" else _url(value, info)


def _masked(url: DatabaseUrl | None) -> str | None:
    # Serialised with the password masked: settings dumps are safe to log.
    return None if url is None else url.url.render_as_string(hide_password=True)


_SCHEMA = WithJsonSchema({"type": "string", "format": "uri"})
# NoDecode: a plain string in the environment, not JSON.
DatabaseUrlSetting = Annotated[
    DatabaseUrl, NoDecode, BeforeValidator(_url), PlainSerializer(_masked), _SCHEMA
]
OptionalDatabaseUrlSetting = Annotated[
    DatabaseUrl | None, NoDecode, BeforeValidator(_optional_url), PlainSerializer(_masked), _SCHEMA
]


class _FromEnvironment(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        # Keeps values (passwords) out of ValidationError messages.
        hide_input_in_errors=True,
        # DatabaseUrl is not a pydantic type; its repr masks the password.
        arbitrary_types_allowed=True,
        # The schema is built when a subclass is first instantiated, not for each
        # class on import: `alembic` commands start faster.
        defer_build=True,
    )


class MigrationSettings(_FromEnvironment):
    """The bounds of a migration run. No URL among them: `alembic upgrade --sql` and a
    run on a handed-in connection read these alone."""

    MIGRATION_LOCK_TIMEOUT_SECONDS: float = Field(default=5.0, ge=0)
    MIGRATION_STATEMENT_TIMEOUT_SECONDS: float = Field(default=0.0, ge=0)  # 0 = no limit
    # A statement that times out on a lock (or the transaction it ran in) is tried
    # again this many times, after growing pauses (migrations/retries.py).
    MIGRATION_LOCK_RETRIES: int = Field(default=5, ge=0)
    # How long a run waits for another run's migration lock; 0 = no limit.
    MIGRATION_LOCK_WAIT_SECONDS: float = Field(default=900.0, ge=0)
    # The migrate step (`python -m <package>.infra.migrate`) only: how long it waits
    # for a database that is not reachable yet (a container started before
    # PostgreSQL), and how often it tries. 0 = try once.
    MIGRATION_WAIT_FOR_DATABASE_SECONDS: float = Field(default=60.0, ge=0)
    MIGRATION_WAIT_INTERVAL_SECONDS: float = Field(default=1.0, gt=0)


class ConnectionSettings(_FromEnvironment):
    """Where the service connects and how: URLs, pooler, pool, timeouts, standbys."""

    DATABASE_URL: DatabaseUrlSetting
    # A direct connection for migrations when DATABASE_URL is a pooler's (Prisma's
    # `directUrl`): session locks and autocommit blocks need a session of their own.
    DATABASE_MIGRATION_URL: OptionalDatabaseUrlSetting = None
    # "transaction": DATABASE_URL is a transaction-mode pooler (PgBouncer, Supavisor).
    DATABASE_POOLER: Pooler = "none"
    DATABASE_CONNECT_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    # Each statement of the app (not of migrations); 0 = no limit.
    DATABASE_STATEMENT_TIMEOUT_SECONDS: float = Field(default=30.0, ge=0)
    # SQLAlchemy's pool, per process: up to SIZE + MAX_OVERFLOW connections.
    DATABASE_POOL_SIZE: int = Field(default=5, ge=1)
    DATABASE_POOL_MAX_OVERFLOW: int = Field(default=10, ge=0)
    DATABASE_POOL_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    # Replace connections older than this (servers and proxies drop idle ones); 0 = never.
    DATABASE_POOL_RECYCLE_SECONDS: float = Field(default=1800.0, ge=0)
    DATABASE_POOL_PRE_PING: bool = True
    # Reads on hot standbys (README "Scaling reads"): one URL, or a libpq host list
    # (h1:5432,h2:5432) tried in order. Unset: reads use the primary's pool.
    DATABASE_READ_URL: OptionalDatabaseUrlSetting = None
    # true: reads fail while the standby is unusable, instead of going to the primary.
    DATABASE_READ_STRICT: bool = False
    # Short: a read waits this long on an unreachable standby before giving up on it.
    DATABASE_READ_CONNECT_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)
    # After the standby failed, reads skip it this long before one of them tries again.
    DATABASE_READ_RETRY_SECONDS: float = Field(default=10.0, gt=0)
    # Reads skip a standby further behind than this; 0 = no bound (and no lag query).
    DATABASE_READ_MAX_LAG_SECONDS: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _connect_as_configured(self) -> Self:
        """Each URL with its pooler and connect timeout; the pooler's refusals, now."""
        pooler, timeout = self.DATABASE_POOLER, self.DATABASE_CONNECT_TIMEOUT_SECONDS
        self.DATABASE_URL = self.DATABASE_URL.using(pooler=pooler, connect_timeout=timeout)
        if self.DATABASE_MIGRATION_URL is not None:  # direct, by definition
            self.DATABASE_MIGRATION_URL = self.DATABASE_MIGRATION_URL.using(
                pooler="none", connect_timeout=timeout
            )
        if self.DATABASE_READ_URL is not None:
            self.DATABASE_READ_URL = self.DATABASE_READ_URL.using(
                pooler=pooler, connect_timeout=self.DATABASE_READ_CONNECT_TIMEOUT_SECONDS
            )
        for name in ("DATABASE_URL", "DATABASE_READ_URL"):
            url: DatabaseUrl | None = getattr(self, name)
            if url is None or url.pooler != "transaction":
                continue
            refused = sorted(
                set(url.connect_args.get("server_settings", {})) - POOLER_STARTUP_PARAMETERS
            )
            if refused:
                raise ValueError(
                    f"{name} sets {refused[0]} at connect time (options=-c ...), which a "
                    "transaction-mode pooler refuses (PgBouncer: unsupported startup "
                    f"parameter); set it on the role instead: ALTER ROLE ... SET {refused[0]} = ..."
                )
        return self


class DatabaseSettings(ConnectionSettings, MigrationSettings):
    """Everything the database layer reads; core/config.py's `Settings` extends it."""
