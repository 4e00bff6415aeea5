"""Progress lines a person can follow: rows done, percent, rate, ETA. Template-owned.

Logged at most every BACKFILL_PROGRESS_SECONDS through the `logging` set-up the
service has (JSON lines with observability=otel), on the logger
`<package>.infra.backfill`.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__.rsplit(".", 1)[0])


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    def __init__(self, name: str, done: int, total: int | None, every: float) -> None:
        self.name, self.every = name, every
        self.done, self.total = done, total
        self.started = self.last = time.monotonic()
        self.done_at_start = done

    def add(self, rows: int, batch_size: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.log(batch_size)

    def log(self, batch_size: int) -> None:
        elapsed = time.monotonic() - self.started
        rate = (self.done - self.done_at_start) / elapsed if elapsed > 0 else 0.0
        total = max(self.total or 0, self.done)
        percent = 100.0 * self.done / total if total else 100.0
        eta = duration((total - self.done) / rate) if rate > 0 else "unknown"
        logger.info(
            "Backfill %s: %d of about %d rows done (%.1f %%), %.0f rows/s, ETA %s, batch %d rows.",
            self.name,
            self.done,
            total,
            percent,
            rate,
            eta,
            batch_size,
        )
