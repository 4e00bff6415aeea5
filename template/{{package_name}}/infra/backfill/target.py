"""The table and key a backfill walks, checked before the first batch. Template-owned.

Batches are keyset ranges: the next `size` keys after the cursor, found by
walking an index in order. Without a btree index whose first column is the key,
each batch would sort the whole table, so such a key is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from .declare import Backfill
from .errors import BackfillError

_COLUMN = text(
    "SELECT c.oid::regclass::text, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),"
    " EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
    "  JOIN pg_am am ON am.oid = ic.relam WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum"
    "  AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree'),"
    " greatest(c.reltuples, 0)::bigint, c.reltuples < 0"
    " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
    " AND NOT a.attisdropped"
    " WHERE c.oid = to_regclass(:table) AND (a.attname = :key OR (:key IS NULL AND a.attnum ="
    "  (SELECT i.indkey[0] FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))"
)


@dataclass(frozen=True)
class Target:
    table: str  # quoted as SQL needs it
    key: str
    key_type: str
    rows_estimate: int | None  # None: never analysed

    def first_range(self) -> Any:
        return text(
            f"SELECT min(k), max(k), max(k)::text, count(*) FROM (SELECT {self.key} AS k"
            f" FROM {self.table} WHERE {self.key} IS NOT NULL ORDER BY {self.key}"
            " LIMIT :size) batch"
        )

    def next_range(self) -> Any:
        return text(
            f"SELECT min(k), max(k), max(k)::text, count(*) FROM (SELECT {self.key} AS k"
            f" FROM {self.table} WHERE {self.key} > :after ORDER BY {self.key}"
            " LIMIT :size) batch"
        )


async def resolve(connection: AsyncConnection, backfill: Backfill) -> Target:
    """The table and key, or one line saying why they cannot be batched."""
    async with connection.begin():
        exists = await connection.scalar(text("SELECT to_regclass(:t)"), {"t": backfill.table})
        if exists is None:
            raise BackfillError(f"backfill {backfill.name}: no table {backfill.table}")
        row = (
            await connection.execute(_COLUMN, {"table": backfill.table, "key": backfill.key})
        ).first()
        if row is None:
            raise BackfillError(
                f"backfill {backfill.name}: "
                + (
                    f"{backfill.table} has no column {backfill.key}"
                    if backfill.key
                    else f"{backfill.table} has no primary key; name an indexed key column (key=...)"
                )
            )
        table, key, key_type, indexed, estimate, never_analysed = row
        if not indexed:
            raise BackfillError(
                f"backfill {backfill.name}: {table}.{key} has no usable index (a valid, "
                f"non-partial btree index whose first column is {key}); each batch would scan "
                f"the table: create one (CREATE INDEX CONCURRENTLY) or batch by the primary key"
            )
        if never_analysed:
            estimate = await connection.scalar(text(f"SELECT count(*) FROM {table}"))
    return Target(table, key, key_type, int(estimate))


async def to_key(connection: AsyncConnection, target: Target, cursor: str | None) -> Any:
    """The saved cursor (text) as a value of the key's type, for the next range."""
    if cursor is None:
        return None
    async with connection.begin():
        return await connection.scalar(
            text(f"SELECT CAST(CAST(:cursor AS text) AS {target.key_type})"), {"cursor": cursor}
        )
