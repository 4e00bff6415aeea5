"""A run waiting for a hung run's migration lock gives up after MIGRATION_LOCK_WAIT_SECONDS,
in one line naming the holder and how to end it; the holder, let go, still finishes.

Through the real `alembic` command line and the migrate step, on the session's PostgreSQL.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time

from background import Background
from database import advisory_locks, applied_versions, sql
from helpers import Service, one_line_failure
from lock_holders import BOUND
from sqlalchemy.engine import URL
from test_lock_contention import LEDGER


def test_a_hung_lock_holder_is_named_after_the_bounded_wait(
    service: Service, database_url: URL
) -> None:
    # Long enough to be caught holding the lock on a busy machine; free, since the
    # second run waits its 5 s while the first is stopped anyway.
    service.write_revision("r1", None, LEDGER + '    op.execute("SELECT pg_sleep(2)")\n')
    first_url = database_url.update_query_dict({"application_name": "first-runner"})
    upgrade = (sys.executable, "-m", "alembic", "upgrade", "head")
    first = Background(service, upgrade, first_url, bound=BOUND)
    try:
        deadline = time.monotonic() + BOUND
        while not any("Running upgrade" in line for line in first.lines):  # it holds the lock
            assert time.monotonic() < deadline and first.process.poll() is None, first.lines
            time.sleep(0.01)
        os.kill(first.process.pid, signal.SIGSTOP)
        [(pid,)] = sql(
            database_url,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'first-runner'",
        )[0]
        started = time.monotonic()
        second = service.run(
            sys.executable, "-m", "app.infra.migrate",
            env=service.env(database_url, MIGRATION_LOCK_WAIT_SECONDS="5"), timeout=BOUND,
        )  # fmt: skip
        seconds = time.monotonic() - started
        line = one_line_failure(
            second,
            "gave up after waiting 5.",
            "MIGRATION_LOCK_WAIT_SECONDS=5",
            f"pid {pid} (application_name 'first-runner'",
            f"pg_terminate_backend({pid})",
            progress=True,
        )
        print(f"the migrate step gave up after {seconds:.1f} s: {line}")
        assert seconds < 15.0, seconds  # interpreter start-up on a busy machine included
        waited = float(re.search(r"waiting ([\d.]+) s", line)[1])  # type: ignore[index]
        assert 5.0 <= waited < 6.0, line
    finally:
        os.kill(first.process.pid, signal.SIGCONT)
        code, lines, _ = first.finish()  # bounded; killed past the bound
    assert code == 0, lines
    assert applied_versions(database_url) == ["r1"]
    assert advisory_locks(database_url) == 0
