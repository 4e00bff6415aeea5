"""The database layer's settings: URLs, pooler, pool, timeouts, migration bounds.

Template-owned: `copier update` keeps this file current. Add your own settings
to `Settings` in core/config.py, which subclasses `DatabaseSettings`.

Each URL is parsed once, here, into a `DatabaseUrl` (database_url.py) that
carries what the engines need; pydantic's `PostgresDsn` is not used because it
refuses Unix-socket URLs with an empty host (the embedded server's). Nothing a
URL holds reaches an error or a dump unmasked; every number of seconds is finite
and bounded, so none can overflow where it is used.

Read from the environment, `.env`, and files in /run/secrets (one per setting,
named after it: Docker's secrets; mount a Kubernetes Secret there).
"""

from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .database_url import DatabaseUrl, Pooler, parse_database_url
from .libpq import MAX_SECONDS

# What a transaction-mode pooler passes on at connect time (PgBouncer's list);
# anything else in `options` it refuses with "unsupported startup parameter".
POOLER_STARTUP_PARAMETERS = frozenset({"application_name"})
# Docker's and compose's secret files; a Kubernetes Secret mounted as a volume there.
SECRETS_DIR = "/run/secrets"

# Finite (no inf, no nan) and bounded: PostgreSQL takes at most MAX_SECONDS.
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
# Connections per process: a pool this size is a mistake long before the server's limit.
MAX_POOL_CONNECTIONS = 1000


def settings_error_line(exc: ValidationError) -> str:
    """One readable line for a settings ValidationError, without any input value."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = f"{field} is not set (set it in the environment, in .env or in {SECRETS_DIR}/{field})"
        problems.append(message if message.startswith(field) else f"{field}: {message}")
    return "invalid settings: " + "; ".join(problems)


class HiddenText:
    """A URL setting's text before it is parsed. Pydantic keeps what a validator was
    given as the error's `input` (in `errors()` and `json()`, whatever
    hide_input_in_errors says): there it shows as <hidden>, never the password."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__


class _HoldsSecrets:
    """Marks a setting whose text may hold secrets: read as HiddenText."""


HOLDS_SECRETS = _HoldsSecrets()


def _url(value: object, info: ValidationInfo) -> DatabaseUrl:
    text = value.text if isinstance(value, HiddenText) else value
    return parse_database_url(text, str(info.field_name))


def _optional_url(value: object, info: ValidationInfo) -> DatabaseUrl | None:
    text = value.text if isinstance(value, HiddenText) else value
    return None if text is None or text == "" else _url(text, info)


def _masked(url: DatabaseUrl | None) -> str | None:
    # No password, no secret parameter: settings dumps are safe to log.
    return None if url is None else url.masked


class _BuiltByTheValidator:
    """A URL setting's innermost annotation: the value is what the validator around it
    builds (no schema of its own: pydantic would build one for the DatabaseUrl
    dataclass and the URL NamedTuple in it), dumped masked. Not PlainSerializer: the
    pydantic module it needs, imported for it alone, cost each `alembic` command about
    8 M instructions (bench/seed.py)."""

    def __get_pydantic_core_schema__(
        self, source: object, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.any_schema(
            serialization=core_schema.plain_serializer_function_ser_schema(_masked)
        )


_BUILT_BY_THE_VALIDATOR = _BuiltByTheValidator()
_SCHEMA = WithJsonSchema({"type": "string", "format": "uri"})
# NoDecode: a plain string in the environment, not JSON. Use these for any URL
# setting of your own: it is parsed like DATABASE_URL and never shown unmasked.
DatabaseUrlSetting = Annotated[
    DatabaseUrl,
    _BUILT_BY_THE_VALIDATOR,
    NoDecode,
    HOLDS_SECRETS,
    BeforeValidator(_url),
    _SCHEMA,
]
OptionalDatabaseUrlSetting = Annotated[
    DatabaseUrl | None,
    _BUILT_BY_THE_VALIDATOR,
    NoDecode,
    HOLDS_SECRETS,
    BeforeValidator(_optional_url),
    _SCHEMA,
]


class EnvironmentSettings(BaseSettings):
    """Where every settings class of the service reads from (the environment, .env,
    /run/secrets), and how: values kept out of errors, numbers as bounded here."""

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
        secrets_dir=SECRETS_DIR,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' own order; the secret files only where their directory
        is (it warns on every read otherwise: outside containers, always)."""
        sources = (init_settings, env_settings, dotenv_settings)
        directory = getattr(file_secret_settings, "secrets_dir", None)
        if isinstance(directory, (str, Path)) and Path(directory).is_dir():
            return (*sources, file_secret_settings)
        return sources

    @model_validator(mode="before")
    @classmethod
    def _hide_secret_texts(cls, data: Any) -> Any:
        """Each URL setting's text as HiddenText, before any validator sees it."""
        if not isinstance(data, dict):
            return data
        hidden = {
            name
            for name, field in cls.model_fields.items()
            if any(marker is HOLDS_SECRETS for marker in field.metadata)
        }
        return {
            key: HiddenText(value) if key in hidden and isinstance(value, str) else value
            for key, value in data.items()
        }


class MigrationSettings(EnvironmentSettings):
    """The bounds of a migration run. No URL among them: `alembic upgrade --sql` and a
    run on a handed-in connection read these alone."""

    MIGRATION_LOCK_TIMEOUT_SECONDS: Seconds = 5.0
    MIGRATION_STATEMENT_TIMEOUT_SECONDS: Seconds = 0.0  # 0 = no limit
    # A statement that times out on a lock (or the transaction it ran in) is tried
    # again this many times, after growing pauses (migrations/retries.py).
    MIGRATION_LOCK_RETRIES: int = Field(default=5, ge=0, le=1000)
    # How long a run waits for another run's migration lock; 0 = no limit.
    MIGRATION_LOCK_WAIT_SECONDS: Seconds = 900.0
    # The migrate step (`python -m <package>.infra.migrate`) only: how long it waits
    # for a database that is not reachable yet (a container started before
    # PostgreSQL), and how often it tries. 0 = try once.
    MIGRATION_WAIT_FOR_DATABASE_SECONDS: Seconds = 60.0
    MIGRATION_WAIT_INTERVAL_SECONDS: PositiveSeconds = 1.0


class ConnectionSettings(EnvironmentSettings):
    """Where the service connects and how: URLs, pooler, pool, timeouts, standbys."""

    DATABASE_URL: DatabaseUrlSetting
    # A direct connection for migrations when DATABASE_URL is a pooler's (Prisma's
    # `directUrl`): session locks and autocommit blocks need a session of their own.
    DATABASE_MIGRATION_URL: OptionalDatabaseUrlSetting = None
    # "transaction": DATABASE_URL is a transaction-mode pooler (PgBouncer, Supavisor).
    DATABASE_POOLER: Pooler = "none"
    DATABASE_CONNECT_TIMEOUT_SECONDS: PositiveSeconds = 10.0
    # Each statement of the app (not of migrations); 0 = no limit.
    DATABASE_STATEMENT_TIMEOUT_SECONDS: Seconds = 30.0
    # SQLAlchemy's pool, per process: up to SIZE + MAX_OVERFLOW connections.
    DATABASE_POOL_SIZE: int = Field(default=5, ge=1, le=MAX_POOL_CONNECTIONS)
    DATABASE_POOL_MAX_OVERFLOW: int = Field(default=10, ge=0, le=MAX_POOL_CONNECTIONS)
    DATABASE_POOL_TIMEOUT_SECONDS: PositiveSeconds = 30.0
    # Replace connections older than this (servers and proxies drop idle ones); 0 = never.
    DATABASE_POOL_RECYCLE_SECONDS: Seconds = 1800.0
    # Check each connection before handing it out (connection_checks.py): replace it
    # if the server closed it; ping it first if it was idle longer than this.
    DATABASE_POOL_PRE_PING: bool = True
    DATABASE_POOL_PRE_PING_IDLE_SECONDS: Seconds = 1.0  # 0 = ping every time
    # true: a failed statement's log line and exception show its bound values. For
    # debugging only: they are user data, passwords among them.
    DATABASE_LOG_PARAMETERS: bool = False
    # Reads on hot standbys (README "Scaling reads"): one URL, or a libpq host list
    # (h1:5432,h2:5432) tried in order. Unset: reads use the primary's pool.
    DATABASE_READ_URL: OptionalDatabaseUrlSetting = None
    # true: reads fail while the standby is unusable, instead of going to the primary.
    DATABASE_READ_STRICT: bool = False
    # Short: a read waits this long on an unreachable standby before giving up on it.
    DATABASE_READ_CONNECT_TIMEOUT_SECONDS: PositiveSeconds = 2.0
    # After the standby failed, reads skip it this long before one of them tries again.
    DATABASE_READ_RETRY_SECONDS: PositiveSeconds = 10.0
    # Reads skip a standby further behind than this; 0 = no bound (and no lag query).
    DATABASE_READ_MAX_LAG_SECONDS: Seconds = 0.0

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
