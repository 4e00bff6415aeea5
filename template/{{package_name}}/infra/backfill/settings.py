"""The backfill runner's settings, read and bounded like every other setting.

Template-owned. The defaults keep a batch short (row locks held a fraction of a
second: an app write to one of those rows waits at most that long), leave the
server idle between batches, and hold the run while a standby falls behind.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from ..settings import EnvironmentSettings, PositiveSeconds, Seconds

# Rows per batch: far more is one long transaction again, whatever the target says.
MAX_BATCH_ROWS = 1_000_000
BatchRows = Annotated[int, Field(ge=1, le=MAX_BATCH_ROWS)]


class BackfillSettings(EnvironmentSettings):
    """BACKFILL_*: how big, how long and how often a backfill's batches are."""

    # The first batch's size; later ones adapt toward the target duration, within
    # MIN and MAX, growing by at most 1.2x a batch.
    BACKFILL_BATCH_SIZE: BatchRows = 1000
    BACKFILL_MIN_BATCH_SIZE: BatchRows = 100
    BACKFILL_MAX_BATCH_SIZE: BatchRows = 50_000
    BACKFILL_TARGET_BATCH_SECONDS: PositiveSeconds = 0.2
    # Idle time between batches: the app, autovacuum and WAL shipping catch up.
    BACKFILL_PAUSE_SECONDS: Seconds = 0.1
    # SET LOCAL in each batch's transaction. A batch that times out is tried again
    # at half the size; a lock timeout is tried again after a pause, up to
    # BACKFILL_LOCK_RETRIES times in a row (the migrations' pauses: 0.5 s doubling).
    BACKFILL_STATEMENT_TIMEOUT_SECONDS: PositiveSeconds = 10.0
    BACKFILL_LOCK_TIMEOUT_SECONDS: PositiveSeconds = 1.0
    BACKFILL_LOCK_RETRIES: int = Field(default=10, ge=0, le=1000)
    # Hold while any standby's replay lag (pg_stat_replication) is above MAX, go on
    # once it is below RESUME. 0 = never hold.
    BACKFILL_MAX_LAG_SECONDS: Seconds = 10.0
    BACKFILL_RESUME_LAG_SECONDS: Seconds = 2.0
    # A progress line (rows, percent, rate, ETA) at most this often.
    BACKFILL_PROGRESS_SECONDS: PositiveSeconds = 10.0

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Self:
        low, first, high = (
            self.BACKFILL_MIN_BATCH_SIZE,
            self.BACKFILL_BATCH_SIZE,
            self.BACKFILL_MAX_BATCH_SIZE,
        )
        if not low <= first <= high:
            raise ValueError(
                f"BACKFILL_BATCH_SIZE={first} must lie between BACKFILL_MIN_BATCH_SIZE={low} "
                f"and BACKFILL_MAX_BATCH_SIZE={high}"
            )
        hold, resume = self.BACKFILL_MAX_LAG_SECONDS, self.BACKFILL_RESUME_LAG_SECONDS
        if hold and not resume < hold:
            raise ValueError(
                f"BACKFILL_RESUME_LAG_SECONDS={resume:g} must be below "
                f"BACKFILL_MAX_LAG_SECONDS={hold:g} (else the run would flap)"
            )
        return self
