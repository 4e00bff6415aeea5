"""`status`: every backfill's state, one line each. Template-owned.

A backfill whose state says running but whose lock nobody holds was stopped
(killed, evicted, its server restarted): `run` resumes it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..database_url import DatabaseUrl
from ..migrations.output import database_failure, describe_run_failure
from . import state
from .connection import backfill_engine
from .declare import Backfill
from .errors import BackfillError
from .progress import duration


async def status_lines(backfills: Mapping[str, Backfill], database: DatabaseUrl) -> list[str]:
    engine = backfill_engine(database, "status")
    try:
        async with engine.connect() as connection, connection.begin():
            recorded = {s.name: s for s in await state.load_all(connection)}
            names = sorted({*backfills, *recorded})
            runners = await state.runner_pids(connection, names)
    except Exception as exc:
        cause = database_failure(exc)
        if cause is None:
            raise
        line = describe_run_failure(cause, database.url, "while reading backfill states")
        raise BackfillError(line) from None
    finally:
        await engine.dispose()
    if not names:
        return ["no backfills declared (see docs/backfills.md)"]
    return [_line(name, recorded.get(name), runners.get(name), name in backfills) for name in names]


def _line(name: str, found: state.State | None, pid: int | None, is_declared: bool) -> str:
    if found is None:
        return f"{name}: not started"
    status = found.status
    if status in ("running", "held") and pid is None:
        status = "stopped (no runner; `run` resumes it)"
    elif pid is not None:
        status = f"{status} (pid {pid})"
    total = max(found.rows_total or 0, found.rows_done)
    percent = 100.0 if found.status == "finished" or not total else 100 * found.rows_done / total
    parts = [
        f"{name}: {status}",
        f"{found.rows_done} of about {total} rows ({percent:.1f} %)",
        f"{found.rows_changed} changed",
        f"{found.batches} batches",
        f"busy {duration(found.busy_seconds)}",
        f"cursor {found.cursor if found.cursor is not None else '(none yet)'}",
    ]
    if found.updated_at is not None:
        parts.append(f"updated {found.updated_at:%Y-%m-%d %H:%M:%S %Z}")
    if found.finished_at is not None:
        parts.append(f"finished {found.finished_at:%Y-%m-%d %H:%M:%S %Z}")
    if not is_declared:
        parts.append("no longer declared")
    if found.last_error and found.status == "failed":
        parts.append(f"last error: {found.last_error}")
    return "; ".join(parts)
