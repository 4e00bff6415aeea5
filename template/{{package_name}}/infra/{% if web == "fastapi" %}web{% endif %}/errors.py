"""JSON for every error a request meets, and nothing in it a caller should not see.
Template-owned.

- The database unreachable during a request through `SessionDep` or
  `ReadSessionDep` (refused, timed out, no free pooled connection within
  DATABASE_POOL_TIMEOUT_SECONDS, a server shutting down or starting up): 503
  `{"detail": "database unavailable"}` with `Retry-After`, by FastAPI's own
  HTTPException handler; one warning line in the log says why (host, port and
  database; never a password).
- `install_error_handlers(app)`, which main.py calls: any other unhandled exception
  answers 500 `{"detail": "internal server error"}`, without its text, SQL or
  values. Starlette raises it again after the response, so the server logs it once,
  with its traceback (engines hide bound values).

HTTPException and request validation (422) keep FastAPI's own handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from ..errors import describe_database_error, is_unavailable

logger = logging.getLogger(__name__)

# How long a client should wait before trying again: a restart or a failover
# usually takes seconds.
RETRY_AFTER_SECONDS = 5
# A name, not `except (A, B):`, which ruff formats without parentheses for py314 targets.
# UnicodeError: a host name the IDNA codec refuses while resolving it.
_DATABASE_ERRORS = (SQLAlchemyError, OSError, UnicodeError)


class DatabaseUnavailable(HTTPException):
    """The request's database cannot be used now: 503, try again after Retry-After."""

    def __init__(self) -> None:
        super().__init__(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "database unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


@contextmanager
def unavailable_as_503(request: Request) -> Iterator[None]:
    """Around a request's use of the database (the session dependencies): an error
    that says the database cannot be reached becomes DatabaseUnavailable. Only
    there, so an OSError of the route's own (a file, another service) stays a 500."""
    try:
        yield
    except _DATABASE_ERRORS as exc:
        if not is_unavailable(exc):
            raise
        reason = describe_database_error(exc)
        logger.warning("%s %s: database unavailable: %s", request.method, request.url.path, reason)
        raise DatabaseUnavailable() from exc


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _internal_error)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # Not logged here: Starlette raises `exc` again once this is sent, and the
    # server logs it ("Exception in ASGI application"), once.
    return JSONResponse(
        {"detail": "internal server error"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
