"""What a backfill is, and where the service declares its own. Template-owned.

The service lists its backfills in `<package>/backfills.py` (its own file,
rendered once): each a `Backfill` naming a table and what one batch does over a
range of its key, `first` to `last` inclusive, in the batch's transaction:

- SQL with the bound parameters `:first` and `:last`, e.g.
  `UPDATE book SET isbn13 = '978' || isbn WHERE id BETWEEN :first AND :last AND isbn13 IS NULL`;
- or an async function `(connection, first, last)` that returns the rows it
  changed (or None), for what one statement cannot say.

A batch must only touch rows of its range: the runner commits the range as done
in the same transaction, so a range is never processed twice.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from .errors import BackfillError

BatchFunction = Callable[[AsyncConnection, Any, Any], Awaitable[int | None]]
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# The service's module of backfills, beside infra/ in its package.
REGISTRY = __name__.rsplit(".", 3)[0] + ".backfills"


@dataclass(frozen=True)
class Backfill:
    """One backfill: `batch` over `table`'s `key` (None: the primary key's first column)."""

    name: str
    table: str
    batch: str | BatchFunction
    key: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise BackfillError(
                f"backfill name {self.name!r}: use lowercase letters, digits, '_' and '-'"
            )
        if isinstance(self.batch, str) and not {":first", ":last"} <= set(
            re.findall(r":\w+", self.batch)
        ):
            raise BackfillError(
                f"backfill {self.name}: its SQL must use :first and :last (the batch's key "
                "range, inclusive), e.g. WHERE id BETWEEN :first AND :last"
            )


def declared() -> dict[str, Backfill]:
    """The service's backfills by name, from <package>/backfills.py's BACKFILLS."""
    try:
        module = importlib.import_module(REGISTRY)
    except ModuleNotFoundError as exc:
        if exc.name != REGISTRY:
            raise
        return {}
    backfills: Sequence[Backfill] = getattr(module, "BACKFILLS", ())
    by_name: dict[str, Backfill] = {}
    for backfill in backfills:
        if backfill.name in by_name:
            raise BackfillError(f"two backfills are named {backfill.name} in {REGISTRY}")
        by_name[backfill.name] = backfill
    return by_name


def find(name: str) -> Backfill:
    backfills = declared()
    if name not in backfills:
        known = ", ".join(sorted(backfills)) or "none"
        raise BackfillError(
            f"no backfill named {name!r} in {REGISTRY}.BACKFILLS (declared: {known})"
        )
    return backfills[name]
