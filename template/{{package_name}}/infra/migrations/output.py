"""What a migration run prints: its log, and one line for a failure. Template-owned."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig

from alembic.config import Config
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from ..errors import describe_database_error
from ..settings import settings_error_line
from .autogenerate import ENUM_LIBRARY_IMPORT


def configure_logging(config: Config) -> None:
    """alembic.ini's logging, keeping the application's loggers alive.

    `fileConfig` disables every existing logger by default, which silences an app
    that runs migrations in-process. Callers that configure logging themselves set
    config.attributes["configure_logger"] = False; alembic.ini may be absent.
    """
    path = config.config_file_name
    if config.attributes.get("configure_logger", True) and path and os.path.exists(path):
        fileConfig(path, disable_existing_loggers=False)


@contextmanager
def failures_as_one_line() -> Iterator[None]:
    """Invalid settings, a database error, a revision missing an import: each a
    CommandError, which `alembic` prints as one `FAILED:` line, not a traceback."""
    try:
        yield
    except ValidationError as exc:
        raise CommandError(settings_error_line(exc)) from None
    except (DBAPIError, OSError) as exc:
        raise CommandError(describe_database_error(exc)) from None
    except AttributeError as exc:
        if not any(f"'{name}'" in str(exc) for name in ("add_enum_value", "sync_enum_values")):
            raise
        # Revisions written before v0.3.0 relied on env.py importing the library.
        raise CommandError(
            f"{exc}: that revision uses alembic-postgresql-enum's operations; add "
            f"`{ENUM_LIBRARY_IMPORT}` to its imports"
        ) from None
