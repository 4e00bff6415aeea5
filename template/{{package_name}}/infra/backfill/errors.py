"""The runner's one-line failure. Template-owned.

A CommandError (Alembic's): the migrate step and the `alembic` command already
print one as a single `FAILED:` line, so a revision that calls
`require_backfill_finished` and the post-deploy step that runs backfills need
nothing more.
"""

from __future__ import annotations

from alembic.util import CommandError


class BackfillError(CommandError):
    """Bad input or a failed batch, as one line; the backfill's state is kept."""
