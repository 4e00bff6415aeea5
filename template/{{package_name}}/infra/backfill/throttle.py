"""How fast a backfill goes: batch size toward a target duration, and a hold on lag.

Template-owned. The sizing is GitLab's batched background migrations' optimizer
without its moving average: the next size is the last times target/duration,
clamped to [0.5, 1.2] (grow slowly, shrink fast), untouched within 10 % of the
target; a batch that hit its statement timeout halves the size. The hold is
graph-node's: stop above an upper bound of standby lag, go on below a lower one,
so that one reading around the bound cannot flap the run on and off.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

GROWTH = 1.2
SHRINK = 0.5
DEAD_BAND = 0.1

# The largest replay lag of any standby, in seconds. NULL (idle, or a standby that
# just connected) is 0, and so is a standby that has replayed all the primary
# wrote: replay_lag keeps its last value until the next reply, which an idle
# primary may not prompt for seconds.
LAG_QUERY = text(
    "SELECT coalesce(max(CASE WHEN replay_lsn >= pg_current_wal_lsn() THEN 0"
    " ELSE extract(epoch FROM replay_lag) END), 0)::float8 FROM pg_stat_replication"
)


class BatchSize:
    def __init__(self, first: int, smallest: int, largest: int, target_seconds: float) -> None:
        self.value, self.smallest, self.largest = first, smallest, largest
        self.target = target_seconds

    def after(self, seconds: float) -> None:
        """The last batch of `value` rows took `seconds`."""
        ratio = self.target / seconds if seconds > 0 else GROWTH
        if abs(ratio - 1) <= DEAD_BAND:
            return
        self.resize(self.value * min(max(ratio, SHRINK), GROWTH))

    def timed_out(self) -> bool:
        """Halve; False when it was already the smallest (halving cannot help)."""
        before = self.value
        self.resize(self.value * SHRINK)
        return self.value < before

    def resize(self, value: float) -> None:
        self.value = min(max(round(value), self.smallest), self.largest)


class LagHold:
    """Held above `hold` seconds of lag, released below `resume` (0: never held)."""

    def __init__(self, hold: float, resume: float) -> None:
        self.hold, self.resume = hold, resume
        self.held = False

    @property
    def enabled(self) -> bool:
        return self.hold > 0

    def update(self, lag: float) -> bool:
        if lag > self.hold:
            self.held = True
        elif lag < self.resume:
            self.held = False
        return self.held


async def replay_lag(connection: AsyncConnection) -> float:
    """Outside any batch's transaction: the reading is its own."""
    async with connection.begin():
        return float(await connection.scalar(LAG_QUERY) or 0.0)
