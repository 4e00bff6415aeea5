"""Runs one backfill to its end: keyset batches, each one short transaction.

Template-owned. Each batch: SET LOCAL lock and statement timeouts, the next
`size` keys after the cursor (walking the key's index), the backfill's batch
over that range, the cursor moved past it, COMMIT. So the rows of a range are
done exactly once, a run killed at any point resumes after the last commit,
and what the batch locks it holds for a fraction of a second.

- A lock timeout (55P03) rolls the batch back and tries it again after the
  migrations' growing pauses (migrations/retries.py), never waiting it out.
- A statement timeout (57014) halves the batch size and tries again.
- Any other failure ends the run in one line naming the backfill and the key
  range; the state keeps the cursor, so a run after the fix goes on from there.
- One runner per backfill (connection.py); a second runner says who holds it.
"""

from __future__ import annotations

import asyncio
import time
from itertools import count
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..database_url import DatabaseUrl
from ..migrations.output import database_failure, describe_run_failure
from ..migrations.retries import is_lock_timeout, retry_pause
from . import state
from .connection import backfill_engine, one_runner
from .declare import Backfill
from .errors import BackfillError
from .progress import Progress, duration, logger
from .settings import BackfillSettings
from .target import Target, resolve, to_key
from .throttle import BatchSize, LagHold, replay_lag

QUERY_CANCELED = "57014"  # statement_timeout
LAG_POLL_SECONDS = 0.5
_TIMEOUTS = text(
    "SELECT set_config('lock_timeout', :lock, true), set_config('statement_timeout', :statement, true)"
)


async def run_backfill(
    backfill: Backfill, settings: BackfillSettings, database: DatabaseUrl
) -> state.State:
    """Run `backfill` to its end (or resume it); its final state."""
    engine = backfill_engine(database, backfill.name)
    run: _Run | None = None
    try:
        async with engine.connect() as connection:
            await state.ensure_table(connection)
            async with one_runner(connection, backfill.name):
                run = _Run(connection, backfill, settings)
                return await run.to_the_end()
    except BackfillError as exc:
        if run is not None:
            await _mark_failed(engine, backfill.name, str(exc))
        raise
    except Exception as exc:
        cause = database_failure(exc)
        if cause is None:
            raise
        line = f"backfill {backfill.name}: " + describe_run_failure(
            cause, database.url, run.doing() if run else ""
        )
        if run is not None:
            await _mark_failed(engine, backfill.name, line)
        raise BackfillError(line) from None
    finally:
        await engine.dispose()


async def _mark_failed(engine: AsyncEngine, name: str, line: str) -> None:
    """Keep the failure in the state (status shows it); not if the server is gone."""
    try:
        async with engine.connect() as connection:
            if await _table_there(connection):
                await state.mark(connection, name, "failed", line)
    except Exception:
        logger.debug("could not record the failure of backfill %s", name, exc_info=True)


async def _table_there(connection: AsyncConnection) -> bool:
    async with connection.begin():
        return await state.table_exists(connection)


class _Run:
    def __init__(
        self, connection: AsyncConnection, backfill: Backfill, settings: BackfillSettings
    ) -> None:
        self.connection, self.backfill, self.settings = connection, backfill, settings
        self.name = backfill.name
        self.size = BatchSize(
            settings.BACKFILL_BATCH_SIZE,
            settings.BACKFILL_MIN_BATCH_SIZE,
            settings.BACKFILL_MAX_BATCH_SIZE,
            settings.BACKFILL_TARGET_BATCH_SECONDS,
        )
        self.hold = LagHold(settings.BACKFILL_MAX_LAG_SECONDS, settings.BACKFILL_RESUME_LAG_SECONDS)
        self.timeouts = {
            "lock": f"{int(settings.BACKFILL_LOCK_TIMEOUT_SECONDS * 1000)}ms",
            "statement": f"{int(settings.BACKFILL_STATEMENT_TIMEOUT_SECONDS * 1000)}ms",
        }
        self.after: Any = None
        self.range: tuple[Any, Any] | None = None

    def doing(self) -> str:
        if self.range is None:
            return "before its first batch"
        return f"in the batch of {self.range[0]}..{self.range[1]}"

    async def to_the_end(self) -> state.State:
        target = await resolve(self.connection, self.backfill)
        current = await state.start(self.connection, self.name, target.rows_estimate)
        if current.status == "finished":
            logger.info("Backfill %s finished before; nothing to do.", self.name)
            return current
        if current.batch_size:  # resume at the size the last run had reached
            self.size.resize(current.batch_size)
        self.after = await to_key(self.connection, target, current.cursor)
        progress = Progress(
            self.name,
            current.rows_done,
            current.rows_total,
            self.settings.BACKFILL_PROGRESS_SECONDS,
        )
        started = time.monotonic()
        logger.info(
            "Backfill %s: %s %s by %s, batches of %d rows.",
            self.name,
            "resuming after" if current.cursor is not None else "starting on",
            current.cursor if current.cursor is not None else target.table,
            target.key,
            self.size.value,
        )
        while await self._batch(target, progress):
            await asyncio.sleep(self.settings.BACKFILL_PAUSE_SECONDS)
            await self._while_standbys_lag()
        await state.mark(self.connection, self.name, "finished")
        progress.total = progress.done  # the table's estimate was only that
        progress.log(self.size.value)
        logger.info(
            "Backfill %s finished: %d rows in %s this run.",
            self.name,
            progress.done - progress.done_at_start,
            duration(time.monotonic() - started),
        )
        async with self.connection.begin():
            final = await state.load(self.connection, self.name)
        assert final is not None
        return final

    async def _batch(self, target: Target, progress: Progress) -> bool:
        """One batch, retried on lock and statement timeouts; False when none is left."""
        for tries in count(1):
            started = time.monotonic()
            try:
                async with self.connection.begin():
                    rows, last_text, changed = await self._in_transaction(target)
                    if not rows:
                        return False
                    seconds = time.monotonic() - started
                    await state.advance(
                        self.connection,
                        self.name,
                        cursor=last_text,
                        rows=rows,
                        changed=changed,
                        batch_size=self.size.value,
                        seconds=seconds,
                    )
            except DBAPIError as exc:
                if is_lock_timeout(exc):
                    self._pause_or_give_up(exc, tries)
                    await asyncio.sleep(retry_pause(tries))
                    continue
                if getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:
                    self._smaller_or_give_up(time.monotonic() - started)
                    continue
                raise self._failed(exc) from None
            except BackfillError:
                raise
            except Exception as exc:  # the batch function's own failure
                raise self._failed(exc) from None
            assert self.range is not None
            self.after = self.range[1]
            self.size.after(seconds)
            progress.add(rows, self.size.value)
            return True
        raise AssertionError("unreachable")

    async def _in_transaction(self, target: Target) -> tuple[int, str, int]:
        connection = self.connection
        await connection.execute(_TIMEOUTS, self.timeouts)
        if self.after is None:
            found = await connection.execute(target.first_range(), {"size": self.size.value})
        else:
            found = await connection.execute(
                target.next_range(), {"after": self.after, "size": self.size.value}
            )
        first, last, last_text, rows = found.one()
        if not rows:
            return 0, "", 0
        self.range = (first, last)
        batch = self.backfill.batch
        if isinstance(batch, str):
            result = await connection.execute(text(batch), {"first": first, "last": last})
            changed = max(result.rowcount, 0)
        else:
            changed = await batch(connection, first, last) or 0
        return int(rows), str(last_text), int(changed)

    def _pause_or_give_up(self, exc: DBAPIError, tries: int) -> None:
        retries = self.settings.BACKFILL_LOCK_RETRIES
        bounds = (
            f"BACKFILL_LOCK_TIMEOUT_SECONDS={self.settings.BACKFILL_LOCK_TIMEOUT_SECONDS:g}, "
            f"BACKFILL_LOCK_RETRIES={retries}"
        )
        if tries > retries:
            raise BackfillError(
                f"backfill {self.name}: canceling statement due to lock timeout {self.doing()}, "
                f"{tries} tries ({bounds}); another session holds locks on those rows: find it "
                "with SELECT pid, pg_blocking_pids(pid), query FROM pg_stat_activity, or run "
                "again when the table is quieter (the run resumes there)"
            )
        logger.warning(
            "Backfill %s: lock timeout %s; rolled back, trying again (try %d of %d; %s).",
            self.name,
            self.doing(),
            tries + 1,
            retries + 1,
            bounds,
        )

    def _smaller_or_give_up(self, seconds: float) -> None:
        limit = self.settings.BACKFILL_STATEMENT_TIMEOUT_SECONDS
        if not self.size.timed_out():
            raise BackfillError(
                f"backfill {self.name}: a batch of {self.size.value} rows (the smallest, "
                f"BACKFILL_MIN_BATCH_SIZE) took longer than BACKFILL_STATEMENT_TIMEOUT_SECONDS="
                f"{limit:g} {self.doing()}; make the batch cheaper or raise the timeout"
            )
        logger.warning(
            "Backfill %s: statement timeout after %.1f s %s; trying again with %d rows.",
            self.name,
            seconds,
            self.doing(),
            self.size.value,
        )

    def _failed(self, exc: BaseException) -> BaseException:
        cause = database_failure(exc)
        if cause is not None and not isinstance(cause, DBAPIError):
            return exc  # the connection itself: run_backfill describes it
        if cause is not None:
            reason = describe_run_failure(cause, None, "").removeprefix("PostgreSQL: ")
        else:
            first = str(exc).splitlines()[0] if str(exc) else ""
            reason = f"{type(exc).__name__}: {first}"
        return BackfillError(
            f"backfill {self.name} failed {self.doing()}: {reason}; nothing of that batch "
            "was kept, the rows before it are done: fix it and run again to go on from there"
        )

    async def _while_standbys_lag(self) -> None:
        if not self.hold.enabled:
            return
        lag = await replay_lag(self.connection)
        if not self.hold.update(lag):
            return
        held_since = time.monotonic()
        logger.warning(
            "Backfill %s held: a standby's replay lag is %.1f s (BACKFILL_MAX_LAG_SECONDS=%g); "
            "going on once it is below %g s.",
            self.name,
            lag,
            self.hold.hold,
            self.hold.resume,
        )
        await state.mark(self.connection, self.name, "held")
        while self.hold.update(lag):
            await asyncio.sleep(LAG_POLL_SECONDS)
            lag = await replay_lag(self.connection)
        await state.mark(self.connection, self.name, "running")
        logger.info(
            "Backfill %s resumed: replay lag %.1f s after %.1f s held.",
            self.name,
            lag,
            time.monotonic() - held_since,
        )
