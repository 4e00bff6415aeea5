"""Database settings: DATABASE_URL parsing, normalisation and one-line errors.

Template-owned: `copier update` keeps this file current. Add your own settings
to `Settings` in core/config.py, which subclasses `DatabaseSettings`.

URLs are parsed with SQLAlchemy's `make_url` rather than pydantic's
`PostgresDsn`: pydantic refuses an empty host, which is how Unix-socket URLs
(`postgresql://user@/db?host=/run/postgresql`, the embedded server's) are written.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationError, WithJsonSchema
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ASYNC_DRIVER = "postgresql+asyncpg"
# PaaS providers hand out postgres:// URLs; both spellings mean "PostgreSQL, default driver".
_CONVERTIBLE_SCHEMES = frozenset({"postgres", "postgresql", ASYNC_DRIVER})
_EXAMPLE = "postgresql+asyncpg://user:password@localhost:5432/dbname"


def parse_database_url(value: object) -> URL:
    """Return `value` as an asyncpg URL, or raise ValueError naming the problem.

    Messages never contain the URL itself, so a password cannot leak through them.
    """
    if isinstance(value, URL):
        url = value
    elif isinstance(value, str) and value.strip():
        try:
            url = make_url(value.strip())
        except ArgumentError:
            raise ValueError(f"DATABASE_URL is not a URL; expected {_EXAMPLE}") from None
    else:
        raise ValueError(f"DATABASE_URL is empty; expected {_EXAMPLE}")
    if url.drivername not in _CONVERTIBLE_SCHEMES:
        raise ValueError(
            f"DATABASE_URL uses unsupported scheme '{url.drivername}'; this service "
            f"needs PostgreSQL through asyncpg ({ASYNC_DRIVER}://; postgres:// and "
            "postgresql:// are converted)"
        )
    if not url.database:
        raise ValueError(f"DATABASE_URL names no database; expected {_EXAMPLE}")
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"DATABASE_URL has port {url.port}, outside 1-65535")
    return url.set(drivername=ASYNC_DRIVER)


def describe_endpoint(url: URL) -> str:
    """'host:port/db' (or the socket directory) for messages; never the password."""
    host = url.host or url.query.get("host") or "localhost"
    return f"{host}:{url.port or 5432}/{url.database}"


def settings_error_line(exc: ValidationError) -> str:
    """One readable line for a settings ValidationError, without any input value."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = f"{field} is not set (set it in the environment or in .env)"
        problems.append(message if message.startswith(field) else f"{field}: {message}")
    return "invalid settings: " + "; ".join(problems)


DatabaseUrl = Annotated[
    URL,
    NoDecode,  # a plain string in the environment, not JSON
    BeforeValidator(parse_database_url),
    # Serialised with the password masked: settings dumps are safe to log.
    PlainSerializer(lambda url: url.render_as_string(hide_password=True), return_type=str),
    WithJsonSchema({"type": "string", "format": "uri"}),
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
    )

    MIGRATION_LOCK_TIMEOUT_SECONDS: float = Field(default=5.0, ge=0)
    MIGRATION_STATEMENT_TIMEOUT_SECONDS: float = Field(default=0.0, ge=0)  # 0 = no limit


class DatabaseSettings(MigrationSettings):
    """Settings the database layer needs; core/config.py's `Settings` extends it."""

    DATABASE_URL: DatabaseUrl
    DATABASE_CONNECT_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
