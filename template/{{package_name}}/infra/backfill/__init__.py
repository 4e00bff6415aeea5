"""Batched, throttled, resumable backfills. Template-owned (docs/backfills.md).

Declare them in `<package>/backfills.py`; run one with
`python -m <package>.infra.backfill run NAME`, see them all with `... status`.
"""

from .contract import finish_backfills, finish_backfills_async, require_backfill_finished
from .declare import Backfill, BatchFunction
from .errors import BackfillError
from .settings import BackfillSettings

__all__ = [
    "Backfill",
    "BackfillError",
    "BackfillSettings",
    "BatchFunction",
    "finish_backfills",
    "finish_backfills_async",
    "require_backfill_finished",
]
