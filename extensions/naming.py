"""Jinja filters that derive and check names in copier.yml.

Plain functions, so tests call them directly; `NamingExtension` registers them.
Copier's validators are Jinja expressions: each `*_problem` filter returns the
message to show, or "" when the value is fine.
"""

from __future__ import annotations

import keyword
import re
import sys

from jinja2 import Environment
from jinja2.ext import Extension

_PACKAGE_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_PG_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")
_PG_MAX_IDENTIFIER = 63  # NAMEDATALEN - 1
# Names a service package would shadow or collide with at import time.
_TAKEN_NAMES = frozenset(sys.stdlib_module_names) | {
    "alembic",
    "asyncpg",
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "tests",
}


def slugify(text: str) -> str:
    """'My Service 2' -> 'my-service-2'."""
    return "-".join(re.findall(r"[a-z0-9]+", str(text).lower()))


def slug_problem(slug: str) -> str:
    if not _SLUG.fullmatch(slug):
        return (
            f"'{slug}' is not a valid project slug: use lowercase letters, digits "
            "and single dashes, e.g. 'my-service'."
        )
    return ""


def package_name_problem(name: str) -> str:
    if not _PACKAGE_NAME.fullmatch(name):
        return (
            f"'{name}' is not a valid package name: use lowercase letters, digits and "
            "underscores, starting with a letter or underscore, e.g. 'bookstore'."
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"'{name}' is a Python keyword and cannot be a package name."
    if name in _TAKEN_NAMES:
        return (
            f"'{name}' would shadow the module of the same name (standard library "
            "or a dependency); choose another package name."
        )
    return ""


def pg_identifier_problem(name: str) -> str:
    if not _PG_IDENTIFIER.fullmatch(name):
        return (
            f"'{name}' is not a valid PostgreSQL database name: use lowercase letters, "
            "digits and underscores, starting with a letter or underscore."
        )
    if len(name) > _PG_MAX_IDENTIFIER:
        return (
            f"'{name}' is {len(name)} characters long; PostgreSQL names are at most "
            f"{_PG_MAX_IDENTIFIER}."
        )
    return ""


class NamingExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(
            slugify=slugify,
            slug_problem=slug_problem,
            package_name_problem=package_name_problem,
            pg_identifier_problem=pg_identifier_problem,
        )
