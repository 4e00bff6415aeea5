"""The benchmark keeps working: its quick mode runs and prints every row.

Not a timed test: the numbers are printed, never asserted here (see bench/run.py).
Counts are not timings: the wire proxy's statement counts for the two references
are checked against what their drivers are known to send.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import ROOT


@pytest.mark.slow
def test_bench_quick_mode_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for row in (
        "render",
        "migrate 1 revisions",
        "migrate 5 revisions",
        "check, 10 models",
        "embedded PostgreSQL",
        "per test: db_session",
        "per test: database_url",
        "per test: pytest-postgresql",
        "per test: create+migrate",
        "stale-statement retry",
        "pooler mode, statement cache off",
    ):
        assert f"\n{row} " in table, table
    # The backfill section (issue 26): every row, and the kill-and-resume run exact.
    for row in (
        "backfill rows/s",
        "backfill app p50",
        "backfill app p99",
        "backfill longest transaction",
        "backfill max replay lag",
        "backfill machine",
    ):
        assert f"\n{row} " in table, table
    assert cells(table, "backfill kill + resume")[2] == "exact", table
    assert cells(table, "backfill app lock timeouts")[2] == "0", table
    for row in ("check vs seed design", "upgrade head vs seed design"):
        assert f"\n{row} " in table and "--quick skips callgrind" in table, table
    assert "stock async" in table and "median of 1 run(s)" in table
    assert table.count(" ms ") >= 4  # each fixture row printed a cost
    variants = ("raw asyncpg", "plain SQLAlchemy", "SessionDep", "ReadSessionDep")
    for variant in variants:
        assert f"\napp statements: {variant} " in table, table
        assert f"\napp p50 c1: {variant} " in table, table
    # Throughput rows print even without wrk (then "skipped: wrk not installed").
    for row in [f"app {v}, c{c}" for v in (*variants, "as shipped") for c in (16, 64)]:
        assert f"\n{row} " in table, table
    # The counter that measures the service sees exactly what the references send:
    # asyncpg's pool, the query and its reset on release; SQLAlchemy's session per
    # request, BEGIN, the query, ROLLBACK.
    raw = cells(table, "app statements: raw asyncpg")
    assert raw[2] == "2" and raw[1].startswith("wire: SELECT, SELECT pg_advisory_unlock_all()")
    assert cells(table, "app statements: plain SQLAlchemy")[1:3] == [
        "wire: BEGIN, SELECT, ROLLBACK",
        "3",
    ], table


def cells(table: str, label: str) -> list[str]:
    """The what, how, ours, reference (and target) cells of a row of the printed table."""
    [line] = [line for line in table.splitlines() if line.startswith(f"{label}  ")]
    return re.split(r"\s{2,}", line)
