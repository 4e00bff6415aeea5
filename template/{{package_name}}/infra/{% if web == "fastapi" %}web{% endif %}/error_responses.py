"""The error answers' JSON, and their place in the OpenAPI document. Template-owned.

FastAPI documents what a route returns and its 422; the answers of errors.py come
from outside the route, so `document_error_answers` adds them to every operation
of the document: 500 and 503 (`{"detail": "..."}`), and 400 where the operation
takes a body (FastAPI's answer to one it cannot decode). A route's own HTTPException
is the route's to declare: `responses={404: {"model": ErrorBody}}` (api/items.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

INTERNAL_ERROR = {"detail": "internal server error"}
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


class ErrorBody(BaseModel):
    """The body of every error answer but a 422: `{"detail": "what went wrong"}`."""

    detail: str


def refused_value(reason: str) -> dict[str, Any]:
    """A 422 for a value the database refused, in the shape of FastAPI's own 422
    (HTTPValidationError), so a client reads one shape for every refused value."""
    error = {"loc": [], "msg": f"the database refused a value: {reason}", "type": "database"}
    return {"detail": [error]}


def _answer(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR_ANSWERS = {
    "500": _answer("A bug: an unhandled error, logged with its traceback"),
    "503": _answer("The database cannot be used now; try again after Retry-After seconds"),
}
UNREADABLE_BODY = _answer("The body could not be decoded")


def declare_error_answers(document: dict[str, Any]) -> dict[str, Any]:
    """`document` (an OpenAPI dict) with the error answers on every operation."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
    for path in document.get("paths", {}).values():
        for method, operation in path.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, answer in ERROR_ANSWERS.items():
                responses.setdefault(status, answer)
            if "requestBody" in operation:
                responses.setdefault("400", UNREADABLE_BODY)
    return document


def document_error_answers(app: FastAPI) -> None:
    """`app.openapi()` (and /openapi.json) declares the error answers. Built on the
    first call, once every router is included, and cached by FastAPI as before."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            return declare_error_answers(build())
        return app.openapi_schema

    # FastAPI's documented way to extend the document ("Extending OpenAPI").
    app.openapi = openapi  # type: ignore[method-assign]
