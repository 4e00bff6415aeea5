"""Database settings: the URLs, the pooler, the pool, and one-line errors.

Template-owned: `copier update` keeps this file current. Add your own settings
to `Settings` in core/config.py, which subclasses `DatabaseSettings`.

URLs are parsed by db/url.py (libpq's form, as providers print it) rather than
pydantic's `PostgresDsn`, which refuses Unix-socket URLs with an empty host
(`postgresql://user@/db?host=/run/postgresql`, the embedded server's).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

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
from sqlalchemy.engine import URL

from .url import connect_arguments, describe_endpoint, parse_database_url

__all__ = [
    "DatabaseSettings",
    "MigrationSettings",
    "describe_endpoint",  # lived here before db/url.py
    "parse_database_url",  # lived here before db/url.py
    "settings_error_line",
]

Pooler = Literal["none", "transaction"]
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


def _url(value: object, info: ValidationInfo) -> URL:
    return parse_database_url(value, str(info.field_name))


def _optional_url(value: object, info: ValidationInfo) -> URL | None:
    return None if value is None or value == "" else _url(value, info)


def _masked(url: URL | None) -> str | None:
    # Serialised with the password masked: settings dumps are safe to log.
    return None if url is None else url.render_as_string(hide_password=True)


_SCHEMA = WithJsonSchema({"type": "string", "format": "uri"})
# NoDecode: a plain string in the environment, not JSON.
DatabaseUrl = Annotated[URL, NoDecode, BeforeValidator(_url), PlainSerializer(_masked), _SCHEMA]
OptionalDatabaseUrl = Annotated[
    URL | None, NoDecode, BeforeValidator(_optional_url), PlainSerializer(_masked), _SCHEMA
]


class MigrationSettings(BaseSettings):
    """Bounds for `alembic upgrade`: fail fast instead of queueing behind a long lock.

    Has no required field, so env.py can read it even when a connection is handed
    in through `config.attributes` and DATABASE_URL is not set.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        # Keeps values (passwords) out of ValidationError messages.
        hide_input_in_errors=True,
        # sqlalchemy.URL is not a pydantic type; its repr masks the password.
        arbitrary_types_allowed=True,
        # The schema is built when a subclass is first instantiated, not for each
        # class on import: `alembic` commands start faster.
        defer_build=True,
    )

    MIGRATION_LOCK_TIMEOUT_SECONDS: float = Field(default=5.0, ge=0)
    MIGRATION_STATEMENT_TIMEOUT_SECONDS: float = Field(default=0.0, ge=0)  # 0 = no limit
    # The migrate step (`python -m <package>.db.migrate`) only: how long it waits for a
    # database that is not reachable yet (a container started before PostgreSQL), and
    # how often it tries. 0 = try once.
    MIGRATION_WAIT_FOR_DATABASE_SECONDS: float = Field(default=60.0, ge=0)
    MIGRATION_WAIT_INTERVAL_SECONDS: float = Field(default=1.0, gt=0)


class DatabaseSettings(MigrationSettings):
    """Settings the database layer needs; core/config.py's `Settings` extends it."""

    DATABASE_URL: DatabaseUrl
    # A direct connection for migrations when DATABASE_URL is a pooler's (Prisma's
    # `directUrl`): session locks and autocommit blocks need a session of their own.
    DATABASE_MIGRATION_URL: OptionalDatabaseUrl = None
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
    DATABASE_READ_URL: OptionalDatabaseUrl = None
    # true: reads fail while the standby is unusable, instead of going to the primary.
    DATABASE_READ_STRICT: bool = False
    # Short: a read waits this long on an unreachable standby before giving up on it.
    DATABASE_READ_CONNECT_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)
    # After the standby failed, reads skip it this long before one of them tries again.
    DATABASE_READ_RETRY_SECONDS: float = Field(default=10.0, gt=0)
    # Reads skip a standby further behind than this; 0 = no bound (and no lag query).
    DATABASE_READ_MAX_LAG_SECONDS: float = Field(default=0.0, ge=0)

    @property
    def migration_url(self) -> URL:
        return self.DATABASE_MIGRATION_URL or self.DATABASE_URL

    @property
    def migrates_through_pooler(self) -> bool:
        return self.DATABASE_POOLER == "transaction" and self.DATABASE_MIGRATION_URL is None

    @model_validator(mode="after")
    def _pooler_passes_the_startup_parameters(self) -> Self:
        if self.DATABASE_POOLER != "transaction":
            return self
        for name in ("DATABASE_URL", "DATABASE_READ_URL"):
            url = getattr(self, name)
            if url is None:
                continue
            _, arguments = connect_arguments(url, name)
            server_settings = set(arguments.get("server_settings", {}))
            refused = sorted(server_settings - POOLER_STARTUP_PARAMETERS)
            if refused:
                raise ValueError(
                    f"{name} sets {refused[0]} at connect time (options=-c ...), which a "
                    "transaction-mode pooler refuses (PgBouncer: unsupported startup "
                    f"parameter); set it on the role instead: ALTER ROLE ... SET {refused[0]} = ..."
                )
        return self
