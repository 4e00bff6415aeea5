"""Migrations under lock contention: lock timeouts retried with backoff (whole
transactions; single statements in an `autocommit_block()`), readers that wait one
lock_timeout rather than the whole retry period, and INVALID indexes from failed
concurrent builds cleaned up. (The bounded wait for a hung run's migration lock:
test_lock_wait.py.)

Through the real `alembic` command line and the migrate step, on the session's
PostgreSQL (and PgBouncer). Each test prints what it measured (`pytest -rP`).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest
from database import advisory_locks, applied_versions, index_validity, sql
from helpers import Service, one_line_failure
from lock_holders import BOUND, connect, held, seen, upgrade_while_held
from servers import PgBouncer
from sqlalchemy.engine import URL

LEDGER = """
    op.create_table("ledger", sa.Column("id", sa.Integer), sa.Column("note", sa.Text))
    op.execute("INSERT INTO ledger SELECT i, 'n' || i FROM generate_series(1, 100) i")
"""
# The README's spelling of a concurrent index: no hand-written drop of an INVALID one.
CONCURRENT_INDEX = """
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_ledger_id", "ledger", ["id"], unique=True,
            postgresql_concurrently=True, if_not_exists=True,
        )
"""
# A transactional revision: a row elsewhere, then DDL that must wait for the table lock.
MARKS = """
    op.create_table("marks", sa.Column("note", sa.Text))
"""
ROW_THEN_ALTER = """
    op.execute("INSERT INTO marks VALUES ('r2')")
    op.add_column("ledger", sa.Column("extra", sa.Text))
"""
RETRY_LINE = re.compile(
    r"^WARNI \[alembic\.env\] Lock timeout on `[^`]+` while applying r\d \(r\d\); .+ in [\d.]+ s"
    r" \(try \d of 6; MIGRATION_LOCK_TIMEOUT_SECONDS=0\.1, MIGRATION_LOCK_RETRIES=5\)\.$"
)


def upgrade(service: Service, url: URL, **env: str) -> subprocess.CompletedProcess[str]:
    return service.alembic("upgrade", "head", env=service.env(url, **env), timeout=BOUND)


def at_r1_with_r2_to_apply(service: Service, url: URL) -> None:
    """r1 applied (ledger, marks); r2 written: a row into marks, then an ALTER of ledger."""
    service.write_revision("r1", None, LEDGER + MARKS)
    service.ok(upgrade(service, url))
    service.write_revision("r2", "r1", ROW_THEN_ALTER)


def retry_lines(output: str) -> list[str]:
    lines = [line for line in output.splitlines() if "Lock timeout on" in line]
    assert all(RETRY_LINE.match(line) for line in lines), lines
    return lines


def test_a_revision_behind_a_table_lock_succeeds_through_retries(
    service: Service, database_url: URL
) -> None:
    at_r1_with_r2_to_apply(service, database_url)
    samples: list[int] = []
    done = threading.Event()

    def sample_the_migration_lock() -> None:
        with connect(database_url) as watcher:
            query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            while not done.is_set():
                samples.append(watcher.execute(query).fetchone()[0])  # type: ignore[index]
                time.sleep(0.01)

    sampler = threading.Thread(target=sample_the_migration_lock)
    sampler.start()
    try:
        # pgroll's test: ACCESS EXCLUSIVE held for 2 s against a 0.1 s lock_timeout.
        code, output = upgrade_while_held(
            service, database_url, "LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE", "ALTER", 2.0,
            MIGRATION_LOCK_TIMEOUT_SECONDS="0.1",
        )  # fmt: skip
    finally:
        done.set()
        sampler.join(BOUND)

    assert code == 0, output
    retries = retry_lines(output)
    assert retries and "rolled back; running the transaction again" in retries[0], output
    print("\n".join(retries))
    assert applied_versions(database_url) == ["r2"]
    # Retried whole: the failed attempts' row went with their transactions.
    assert sql(database_url, "SELECT count(*) FROM marks WHERE note = 'r2'")[0] == [(1,)]
    # The migration lock stayed held across the pauses: no other run could slip in.
    held_from, held_to = samples.index(1), len(samples) - samples[::-1].index(1)
    assert 0 not in samples[held_from:held_to], samples
    assert held_to - held_from > 50, samples  # sampled over the retries, every 10 ms


def test_with_no_retries_a_lock_timeout_fails_in_one_line(
    service: Service, database_url: URL
) -> None:
    at_r1_with_r2_to_apply(service, database_url)
    with held(database_url, "LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE", threading.Event()):
        result = upgrade(
            service, database_url, MIGRATION_LOCK_TIMEOUT_SECONDS="0.1", MIGRATION_LOCK_RETRIES="0"
        )
    one_line_failure(
        result,
        "canceling statement due to lock timeout",
        "`ALTER TABLE ledger ADD COLUMN extra TEXT` while applying r2",
        "1 try (MIGRATION_LOCK_TIMEOUT_SECONDS=0.1, MIGRATION_LOCK_RETRIES=0)",
        "pg_blocking_pids",
        progress=True,
    )
    assert applied_versions(database_url) == ["r1"]


def test_a_statement_in_an_autocommit_block_is_retried_alone(
    service: Service, database_url: URL
) -> None:
    service.write_revision(
        "r1", None, LEDGER + '    op.create_table("busy", sa.Column("id", sa.Integer))\n'
    )
    service.ok(upgrade(service, database_url))
    service.write_revision(
        "r2",
        "r1",
        """
        with op.get_context().autocommit_block():
            op.execute("INSERT INTO ledger VALUES (0, 'block')")
            op.add_column("busy", sa.Column("extra", sa.Text))
        """,
    )
    code, output = upgrade_while_held(
        service, database_url, "LOCK TABLE busy IN ACCESS EXCLUSIVE MODE", "ALTER", 1.0,
        MIGRATION_LOCK_TIMEOUT_SECONDS="0.1",
    )  # fmt: skip
    assert code == 0, output
    retries = retry_lines(output)
    assert retries, output
    assert all(
        "`ALTER TABLE busy ADD COLUMN extra TEXT` while applying r2" in line for line in retries
    )
    assert all("retrying that statement alone" in line for line in retries), retries
    assert applied_versions(database_url) == ["r2"]
    # The block's first statement, committed on its own, ran once.
    assert sql(database_url, "SELECT count(*) FROM ledger WHERE note = 'block'")[0] == [(1,)]


def reader_waits(url: URL, lock_timeout: str, service: Service) -> tuple[float, str]:
    """The longest a reader (one SELECT every 10 ms) waited while a revision's ALTER
    waited for a transaction that read the table (ACCESS SHARE: it blocks the ALTER,
    no reader) and stayed open 2 s after the ALTER began to wait."""
    waits: list[float] = []
    done = threading.Event()

    def read() -> None:
        with connect(url) as reader:
            while not done.is_set():
                started = time.monotonic()
                reader.execute("SELECT count(*) FROM ledger")
                waits.append(time.monotonic() - started)
                time.sleep(0.01)

    release = threading.Event()
    with held(url, "SELECT count(*) FROM ledger", release):
        reader = threading.Thread(target=read)
        reader.start()
        try:
            run = subprocess.Popen(
                [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=service.path,
                env=service.env(url, MIGRATION_LOCK_TIMEOUT_SECONDS=lock_timeout),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            try:
                seen(url, "wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE ledger%'")
                threading.Timer(2.0, release.set).start()
                output = run.communicate(timeout=BOUND)[0]
            finally:
                run.kill()
        finally:
            release.set()
            done.set()
            reader.join(BOUND)
    assert run.returncode == 0, output
    return max(waits), output


def test_readers_wait_about_one_lock_timeout_not_the_whole_retry_period(
    service: Service, database_url: URL
) -> None:
    service.write_revision("r1", None, LEDGER)
    service.ok(upgrade(service, database_url))
    service.write_revision("r2", "r1", 'op.add_column("ledger", sa.Column("extra", sa.Text))')

    with_retries, output = reader_waits(database_url, "0.1", service)
    assert retry_lines(output), output
    sql(database_url, "ALTER TABLE ledger DROP COLUMN extra", "DELETE FROM alembic_version")
    sql(database_url, "INSERT INTO alembic_version VALUES ('r1')")
    without_timeout, output = reader_waits(database_url, "0", service)
    assert not retry_lines(output), output

    print(
        f"longest reader wait: {with_retries * 1000:.0f} ms with lock_timeout 100 ms and "
        f"retries, {without_timeout * 1000:.0f} ms with no lock_timeout"
    )
    assert with_retries < 0.3, with_retries  # about 2 x lock_timeout at most
    assert without_timeout > 1.5, without_timeout  # queued behind the ALTER throughout


def test_a_failed_unique_concurrent_index_is_built_by_a_rerun_of_the_plain_revision(
    service: Service, database_url: URL
) -> None:
    service.write_revision(
        "r1", None, LEDGER + "    op.execute(\"INSERT INTO ledger VALUES (1, 'dup')\")\n"
    )
    service.write_revision("r2", "r1", CONCURRENT_INDEX)
    result = upgrade(service, database_url)
    one_line_failure(result, "could not create unique index", "while applying r2", progress=True)
    assert index_validity(database_url, "ledger") == {
        "ix_ledger_id": False
    }  # INVALID, left by the failed build

    sql(database_url, "DELETE FROM ledger WHERE note = 'dup'")
    output = service.ok(upgrade(service, database_url))
    assert "Dropping the INVALID index public.ix_ledger_id" in output, output
    assert applied_versions(database_url) == ["r2"]
    assert index_validity(database_url, "ledger") == {"ix_ledger_id": True}


def test_a_concurrent_index_waiting_for_a_writer_is_built_through_retries(
    service: Service, database_url: URL
) -> None:
    service.write_revision("r1", None, LEDGER)
    service.ok(upgrade(service, database_url))
    service.write_revision("r2", "r1", CONCURRENT_INDEX)
    # A writer's open transaction: the build's second phase waits for it, times out and
    # leaves an INVALID index, which the retry drops before it builds again.
    code, output = upgrade_while_held(
        service, database_url, "INSERT INTO ledger VALUES (0, 'w')", "CREATE UNIQUE INDEX", 1.0,
        MIGRATION_LOCK_TIMEOUT_SECONDS="0.1",
    )  # fmt: skip
    assert code == 0, output
    assert all("retrying that statement alone" in line for line in retry_lines(output)), output
    assert "Dropping the INVALID index public.ix_ledger_id" in output, output
    assert applied_versions(database_url) == ["r2"]
    assert index_validity(database_url, "ledger") == {"ix_ledger_id": True}


@pytest.mark.xdist_group("pgbouncer")
def test_through_a_transaction_pooler_a_retry_rolls_back_to_a_savepoint(
    service: Service, pgbouncer: PgBouncer, database_url: URL
) -> None:
    at_r1_with_r2_to_apply(service, database_url)
    pooled = pgbouncer.url(str(database_url.database))
    code, output = upgrade_while_held(
        service, pooled, "LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE", "ALTER", 1.0,
        DATABASE_POOLER="transaction", MIGRATION_LOCK_TIMEOUT_SECONDS="0.1",
    )  # fmt: skip
    assert code == 0, output
    assert retry_lines(output), output
    assert applied_versions(database_url) == ["r2"]
    # One transaction throughout (its migration lock with it); each failed attempt's row
    # went with its savepoint.
    assert sql(database_url, "SELECT count(*) FROM marks WHERE note = 'r2'")[0] == [(1,)]
    assert advisory_locks(database_url) == 0
