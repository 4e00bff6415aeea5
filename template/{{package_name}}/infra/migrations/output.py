"""What a migration run prints: its log, and one line for a failure. Template-owned.

- `configure_logging(config)`: alembic.ini's logging, the app's loggers kept.
- `failures_as_one_line()`: around env.py, each failure as one `FAILED:` line; one
  in the revision files themselves names the file (graph.py).
- `database_failure(exc)`: the database error behind what SQLAlchemy raised.
- `describe_run_failure(cause, url, doing)`: that line, naming what the run was doing;
  `database_failures_described(url, doing)` raises it for a block.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig

from alembic.config import Config
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, StatementError

from ..database_url import describe_endpoint
from ..errors import DATABASE_ERRORS, describe_database_error
from ..settings import settings_error_line
from .autogenerate import ENUM_LIBRARY_IMPORT

# Alembic only warns about one revision id in two files (it then runs one of them) and
# about a down_revision no file has (then fails with a KeyError): errors here, which
# failures_as_one_line turns into a line naming the file.
warnings.filterwarnings(
    "error",
    message=r"Revision \S+ (is present more than once|referenced from .* is not present)",
    category=UserWarning,
    module=r"alembic\.script",
)


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
    except CommandError as exc:
        _raise_graph_failure(exc)
        raise
    except ValidationError as exc:
        raise CommandError(settings_error_line(exc)) from None
    except AttributeError as exc:
        if not any(f"'{name}'" in str(exc) for name in ("add_enum_value", "sync_enum_values")):
            _raise_graph_failure(exc)  # a revision file without down_revision, say
            raise
        # Revisions written before v0.3.0 relied on env.py importing the library.
        raise CommandError(
            f"{exc}: that revision uses alembic-postgresql-enum's operations; add "
            f"`{ENUM_LIBRARY_IMPORT}` to its imports"
        ) from None
    except Exception as exc:
        cause = database_failure(exc)
        if cause is None:
            _raise_graph_failure(exc)
            raise  # a revision's own bug: the traceback shows where
        raise CommandError(describe_run_failure(cause, None, "")) from None


def _raise_graph_failure(exc: BaseException) -> None:
    """A failure that the revision files cause, as one line naming the file."""
    from .graph import graph_failure  # only a failed run needs it

    line = graph_failure(exc)
    if line is not None:
        raise CommandError(line) from None


@contextmanager
def database_failures_described(url: URL, doing: str = "") -> Iterator[None]:
    """A database failure in the block as one line naming the server at `url` and
    `doing`; anything else (a revision's own bug) goes on as it was."""
    try:
        yield
    except CommandError:
        raise
    except Exception as exc:
        cause = database_failure(exc)
        if cause is None:
            raise
        raise CommandError(describe_run_failure(cause, url, doing)) from None


def database_failure(exc: BaseException) -> BaseException | None:
    """The database or network error behind `exc`, or None when there is none.

    On a dead connection SQLAlchemy raises more than DBAPIError: a StatementError
    around the driver's OSError, or, when cleanup (a COMMIT in a `finally`, such as
    the one ending an `autocommit_block()`) touches the connection again, a
    PendingRollbackError whose `__context__` is the original failure.
    """
    seen: set[int] = set()
    candidate: BaseException | None = exc
    while candidate is not None and id(candidate) not in seen:
        seen.add(id(candidate))
        if isinstance(candidate, DATABASE_ERRORS):
            return candidate
        if isinstance(candidate, StatementError) and isinstance(candidate.orig, DATABASE_ERRORS):
            return candidate.orig
        # What `raise ... from` named, else what was being handled (unless `from None`).
        suppressed = candidate.__suppress_context__
        candidate = candidate.__cause__ or (None if suppressed else candidate.__context__)
    return None


def connection_lost(cause: BaseException) -> bool:
    """The server went away (stopped, killed, restarted) or the network failed."""
    if isinstance(cause, DBAPIError):
        return bool(cause.connection_invalidated)
    return isinstance(cause, OSError) and not isinstance(cause, TimeoutError)


def describe_run_failure(cause: BaseException, url: URL | None, doing: str) -> str:
    """One line for a database failure in the middle of a run; `doing` says where,
    e.g. "while applying 0002 (add isbn)"."""
    if connection_lost(cause):
        where = f" at {describe_endpoint(url)}" if url is not None else ""
        reason = describe_database_error(cause).split(": ", 1)[-1]
        return (
            f"lost the connection to PostgreSQL{where}{f' {doing}' if doing else ''}: "
            f"{reason}; run again once the server is back"
        )
    line = describe_database_error(cause, url)
    return f"{line}, {doing}" if doing else line
