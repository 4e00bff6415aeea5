"""One readable line for a database failure, and whether waiting could cure it.

Template-owned. Messages name host, port and database, never the password:
asyncpg does not put it in its errors, and `describe_endpoint` leaves it out.
"""

from __future__ import annotations

import errno
import socket
import ssl

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from .database_url import describe_endpoint

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


def describe_database_error(exc: BaseException, url: URL | None = None) -> str:
    where = f" at {describe_endpoint(url)}" if url is not None else ""
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
    return f"PostgreSQL{where}: {type(exc).__name__}: {exc}"


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
