"""Sessions of the test's own that hold locks while a migration runs, and what they see
(tests/test_lock_contention.py, tests/test_lock_wait.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from helpers import Service
from sqlalchemy.engine import URL

BOUND = 60.0  # no wait in the lock tests is longer


def connect(url: URL) -> psycopg.Connection:
    """A plain autocommit connection for the test's own sessions (holders, readers)."""
    host = url.query.get("host") or url.host
    return psycopg.connect(
        host=str(host), port=url.port, user=url.username, password=url.password or None,
        dbname=url.database, autocommit=True, prepare_threshold=None,  # PgBouncer 1.18
    )  # fmt: skip


def seen(url: URL, condition: str) -> None:
    """Until some session of this database matches `condition` in pg_stat_activity."""
    deadline = time.monotonic() + BOUND
    with connect(url) as watcher:
        query = f"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND {condition}"
        while watcher.execute(query).fetchone() == (0,):  # type: ignore[comparison-overlap]
            assert time.monotonic() < deadline, condition
            time.sleep(0.01)


@contextmanager
def held(url: URL, statement: str, release: threading.Event) -> Iterator[None]:
    """A transaction that ran `statement` (took its locks), open until `release` is set
    or the block ends."""
    session = connect(url)
    session.execute("BEGIN")
    session.execute(statement)  # type: ignore[arg-type]

    def end_when_released() -> None:
        release.wait(BOUND)
        session.execute("COMMIT")
        session.close()

    ender = threading.Thread(target=end_when_released)
    ender.start()
    try:
        yield
    finally:
        release.set()
        ender.join(BOUND)


def upgrade_while_held(
    service: Service, url: URL, statement: str, waiting: str, seconds: float, **env: str
) -> tuple[int, str]:
    """`alembic upgrade head` while another transaction holds what `statement` took, until
    `seconds` after the run's statement starting with `waiting` was first seen waiting."""
    release = threading.Event()
    with held(url, statement, release):
        run = subprocess.Popen(
            [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=service.path,
            env=service.env(url, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        try:
            seen(url, f"wait_event_type = 'Lock' AND query LIKE '{waiting}%'")
            threading.Timer(seconds, release.set).start()
            output = run.communicate(timeout=BOUND)[0]
        finally:
            release.set()
            run.kill()  # no-op once it ended
    return run.returncode, output
