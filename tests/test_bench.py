"""The benchmark keeps working: its quick mode runs and prints every row.

Not a timed test: the numbers are printed, never asserted here (see bench/run.py).
"""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT


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
    ):
        assert f"\n{row} " in table, table
    for row in ("check vs seed design", "upgrade head vs seed design"):
        assert f"\n{row} " in table and "--quick skips callgrind" in table, table
    assert "stock async" in table and "median of 1 run(s)" in table
    assert table.count(" ms ") >= 4  # each fixture row printed a cost
