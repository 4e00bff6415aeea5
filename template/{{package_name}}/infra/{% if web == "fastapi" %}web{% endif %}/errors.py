"""JSON for every error a request meets, and nothing in it a caller should not see.
Template-owned. docs/api-errors.md says what each status means.

- The database unreachable during a request through `SessionDep` or
  `ReadSessionDep` (refused, timed out, no free pooled connection within
  DATABASE_POOL_TIMEOUT_SECONDS, a server shutting down or starting up): 503
  `{"detail": "database unavailable"}` with `Retry-After`, by FastAPI's own
  HTTPException handler; one warning line in the log says why (host, port and
  database; never a password).
- `install_error_handlers(app)`, which main.py calls:
  - a value the database refused (a data exception, SQLSTATE class 22: out of its
    column's range, a NUL in text, ...): 422, shaped like FastAPI's own 422, with
    what was wrong and never the value; one warning line in the log, no traceback.
    A route's models should have refused it first (infra/column_values.py);
  - any other unhandled exception: 500 `{"detail": "internal server error"}`,
    without its text, SQL or values, logged once here with its traceback (engines
    hide bound values) and, with observability, the request's and trace's ids. Not
    raised again: the connection stays open for the client's next request (raised
    to the server, uvicorn would close it);
  - the OpenAPI document declares these answers on every route (error_responses.py).

HTTPException and request validation (422) keep FastAPI's own handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import data_exception, describe_database_error, is_unavailable
from .error_responses import INTERNAL_ERROR, document_error_answers, refused_value

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
    """Call before adding middleware: an exception raised in middleware added later
    is answered by the fallback below, and the server then closes the connection."""
    app.add_middleware(ErrorAnswers)
    # Errors outside ErrorAnswers (in middleware added after this call) still answer
    # JSON; Starlette raises them again for the server to log, which ends the connection.
    app.add_exception_handler(Exception, _internal_error)
    document_error_answers(app)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(INTERNAL_ERROR, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)


class ErrorAnswers:
    """Middleware: a route's unhandled exception becomes its answer (422 for a refused
    value, 500 otherwise), logged here, once, and not raised any further."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = complete = False

        async def watched_send(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as exc:
            if started and not complete:
                raise  # half an answer: only closing the connection tells the client
            response = _answer(f"{scope['method']} {route_template(scope)}", exc)
            if not started:  # else it failed after its answer (a background task)
                await response(scope, receive, send)


def route_template(scope: Scope) -> str:
    """The matched route's path ("/items/{item_id}"), set in the scope by the router;
    never the raw path, whose values stay out of logs and metrics' labels."""
    route: Any = scope.get("route")
    return str(getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched")


def _answer(where: str, exc: Exception) -> JSONResponse:
    reason = data_exception(exc)
    if reason is not None:
        # The client's value, not our bug: no traceback, and a level no one is paged for.
        logger.warning("%s: 422, the database refused a value: %s", where, reason)
        return JSONResponse(refused_value(reason), status_code=422)
    logger.error("%s: 500, unhandled %s", where, type(exc).__name__, exc_info=exc)
    return JSONResponse(INTERNAL_ERROR, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)
