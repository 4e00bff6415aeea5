"""Where backfills meet the migrations. Template-owned.

- `require_backfill_finished("name")`, in a revision's upgrade(): the contract
  step (SET NOT NULL, a constraint, dropping the old column) refuses, in one
  line naming the backfill and the command to run, until that backfill finished.
- `finish_backfills(["name"])`: runs backfills to their end, for the post-deploy
  step (and for tests and scripts): synchronous, as the migrate step is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from alembic import context, op
from pydantic import ValidationError
from sqlalchemy import text

from ...core.config import get_settings
from ..database_url import DatabaseUrl
from ..settings import settings_error_line
from .declare import declared, find
from .errors import BackfillError
from .runner import run_backfill
from .settings import BackfillSettings
from .state import TABLE

COMMAND = f"python -m {__name__.rsplit('.', 1)[0]} run"


def require_backfill_finished(name: str) -> None:
    """Fail the migration run in one line unless backfill `name` has finished.

    `alembic upgrade --sql`: the script gets the same check, as a DO block."""
    line = (
        f"backfill {name} has not finished: run `{COMMAND} {name}` "
        f"(make backfill name={name}), then migrate again"
    )
    if context.is_offline_mode():
        quoted = name.replace("'", "''")
        message = line.replace("'", "''")
        op.execute(
            "DO $$ BEGIN IF to_regclass('" + TABLE + "') IS NULL OR NOT EXISTS (SELECT FROM "
            f"{TABLE} WHERE name = '{quoted}' AND status = 'finished') THEN RAISE EXCEPTION "
            f"'{message}'; END IF; END $$"
        )
        return
    connection = op.get_bind()
    status = None
    if connection.scalar(text(f"SELECT to_regclass('{TABLE}') IS NOT NULL")):
        status = connection.scalar(
            text(f"SELECT status FROM {TABLE} WHERE name = :name"), {"name": name}
        )
    if status != "finished":
        state = "never run" if status is None else status
        raise BackfillError(line.replace("has not finished", f"has not finished ({state})"))


def finish_backfills(names: Iterable[str] | None = None) -> None:
    """Run each named backfill (None: every declared one) to its end, one after the
    other; a finished one returns at once. BackfillError (one line) on a failure."""
    asyncio.run(finish_backfills_async(names))


async def finish_backfills_async(names: Iterable[str] | None = None) -> None:
    chosen = [find(name) for name in names] if names is not None else list(declared().values())
    if not chosen:
        return
    settings, url = read_settings()
    for backfill in chosen:
        await run_backfill(backfill, settings, url)


def read_settings() -> tuple[BackfillSettings, DatabaseUrl]:
    """BACKFILL_*, and where to connect: as migrations do (a direct connection)."""
    try:
        database = get_settings()
        return BackfillSettings(), database.DATABASE_MIGRATION_URL or database.DATABASE_URL
    except ValidationError as exc:
        raise BackfillError(settings_error_line(exc)) from None
