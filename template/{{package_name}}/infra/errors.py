"""One readable line for a database failure, and whether waiting could cure it.

Template-owned. Messages name host, port and database, never the password:
asyncpg does not put it in its errors, and `describe_endpoint` leaves it out.
"""

from __future__ import annotations

import errno
import socket
import ssl

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .database_url import describe_endpoint

# Names, not `except (A, B):`, which ruff formats without parentheses for py314 targets.
# What a database call raises when the server refuses, fails or cannot be reached.
DATABASE_ERRORS = (DBAPIError, OSError)
# Cleanup on a connection whose server went away: SQLAlchemy's own errors too
# (StatementError, PendingRollbackError), which are no DBAPIError.
CLEANUP_ERRORS = (SQLAlchemyError, OSError)

# What a server answers while it cannot take connections yet: 57P03 (starting up,
# shutting down, in recovery) and class 08's connection failures. Not 08P01, which
# PgBouncer also sends for "no such database".
NOT_YET_SQLSTATES = frozenset({"57P03", "08000", "08001", "08003", "08006"})
# Nothing listens yet, or the network path is not there yet.
NOT_YET_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
    }
)

# Also unusable for a request, though waiting will not help the migrate step: a
# server shutting down or crashed (57P01, 57P02) ends the connection it is on.
UNAVAILABLE_SQLSTATES = NOT_YET_SQLSTATES | {"57P01", "57P02"}


def describe_database_error(exc: BaseException, url: URL | None = None) -> str:
    where = f" at {describe_endpoint(url)}" if url is not None else ""
    if is_invalid_host_name(exc):
        reason = str(exc.__cause__ or exc).removeprefix("UnicodeError: ")
        return f"cannot connect to PostgreSQL{where}: not a valid host name ({reason})"
    if isinstance(exc, DBAPIError):
        # SQLAlchemy's text adds the SQL and its parameters; keep the server's words only.
        original = exc.orig if exc.orig is not None else exc
        reason = str(original).splitlines()[0] if str(original) else type(original).__name__
        reason = reason.split(">: ", 1)[-1]  # "<class 'asyncpg...Error'>: text" -> "text"
        if reason.startswith("unsupported startup parameter"):  # PgBouncer's words
            reason += " (behind a transaction-mode pooler, set DATABASE_POOLER=transaction)"
        return f"PostgreSQL{where}: {reason}"
    if isinstance(exc, TimeoutError):
        # asyncpg's connect timeout, or its client-side statement timeout (behind a pooler).
        return f"PostgreSQL{where}: timed out (no answer within the connect or statement timeout)"
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc).splitlines()[0] or type(exc).__name__
        return f"cannot connect to PostgreSQL{where}: {reason}"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"PostgreSQL{where}: {type(exc).__name__}: {first}"


def is_invalid_host_name(exc: BaseException) -> bool:
    """The IDNA codec refused a host name while resolving it (`hóst..example`)."""
    return isinstance(exc, UnicodeError) and "idna" in str(exc)


def is_unavailable(exc: BaseException) -> bool:
    """True when the database cannot be used right now (for a request: 503, retry
    later): refused, unreachable, timed out, no free connection in the pool within
    its timeout, a connection lost, a server starting up or shutting down. False for
    a statement's own error (a constraint, a syntax error) and for TLS failures."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        original = exc.orig
        if getattr(original, "sqlstate", None) in UNAVAILABLE_SQLSTATES:
            return True
        return isinstance(original, OSError) and is_unavailable(original)
    if isinstance(exc, ssl.SSLError):
        return False
    if is_invalid_host_name(exc):  # as unreachable as a name DNS does not know
        return True
    # OSError covers TimeoutError, ConnectionError, socket.gaierror, a missing socket file.
    return isinstance(exc, OSError)


# A data exception (SQLSTATE class 22): the statement was sound, a value in it was
# not (out of its type's range, a NUL in text, not a number, too long). The words
# are ours: the server's own often quote the value.
DATA_EXCEPTIONS = {
    "22001": "a value is too long for its column",
    "22003": "a number is out of its column's range",
    "22007": "a date or time is not in a form the database reads",
    "22008": "a date or time is out of range",
    "22012": "division by zero",
    "22021": "text holds a character the database cannot store (NUL)",
    "22P02": "a value is not in the form its column's type needs",
    "22P05": "text holds a character the database cannot store",
}


def data_exception(exc: BaseException) -> str | None:
    """What a data exception says is wrong, without the value; None for any other
    error. asyncpg's own refusal of a bound value before sending it (an int beyond
    int64: "invalid input for query argument $1") is one too, SQLSTATE 22000."""
    if not isinstance(exc, DBAPIError):
        return None
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if not (isinstance(sqlstate, str) and sqlstate.startswith("22")):
        return None
    reason = DATA_EXCEPTIONS.get(sqlstate, "a value the database cannot take")
    return f"{reason} (SQLSTATE {sqlstate})"


def is_not_reachable_yet(exc: BaseException, url: URL) -> bool:
    """True when the server is not there yet (refused, no socket, no such host yet,
    starting up, timed out): waiting may cure it. False for what waiting cannot
    cure: a wrong password, a missing database or role, a TLS failure."""
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "sqlstate", None) in NOT_YET_SQLSTATES
    if isinstance(exc, ssl.SSLError):
        return False
    # A host name that does not resolve yet: a container not started, a
    # Kubernetes pod not ready behind a headless service.
    if isinstance(exc, (TimeoutError, socket.gaierror)):
        return True
    if isinstance(exc, FileNotFoundError):
        # The server's socket file, not yet created; over TCP it is a local file
        # (sslrootcert, sslcert), which waiting will not bring.
        return _through_unix_socket(url)
    return isinstance(exc, OSError) and exc.errno in NOT_YET_ERRNOS


def _through_unix_socket(url: URL) -> bool:
    hosts = url.query.get("host", ())
    candidates = [url.host, *([hosts] if isinstance(hosts, str) else hosts)]
    return any(host and host.startswith("/") for host in candidates)
