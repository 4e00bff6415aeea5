"""Revisions that leave the transaction (`autocommit_block()`, as CREATE INDEX
CONCURRENTLY needs) stay serialised and bounded, and their failures are recoverable.

A run holds a session-level advisory lock and session-level timeouts, so both
outlast the COMMIT an autocommit block makes. Through the real `alembic` CLI.
"""

from __future__ import annotations

import sys

import pytest
from database import (
    advisory_locks,
    applied_versions,
    index_validity,
    sql,
    table_locked,
    until_connected,
)
from helpers import Service
from sqlalchemy.engine import URL

LEDGER = """
    op.create_table("ledger", sa.Column("id", sa.Integer), sa.Column("note", sa.Text))
    op.execute("INSERT INTO ledger SELECT i, 'n' || i FROM generate_series(1, 1000) i")
"""
# The README's spelling: re-runnable, and a build that failed half-way (an INVALID
# index) is dropped first, since IF NOT EXISTS would keep it.
CONCURRENT_INDEX = """
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_ledger_id")
        op.create_index(
            "ix_ledger_id", "ledger", ["id"], unique=True,
            postgresql_concurrently=True, if_not_exists=True,
        )
"""
# What the timeout tests need: a block whose COMMIT would drop transaction-scoped settings.
AUTOCOMMIT_BLOCK = """
    with op.get_context().autocommit_block():
        op.execute("SELECT 1")
"""


def upgrade(service: Service, url: URL, **env: str) -> tuple[int, str]:
    result = service.alembic("upgrade", "head", env=service.env(url, **env), timeout=90)
    return result.returncode, result.stdout + result.stderr


def test_concurrent_upgrades_through_an_autocommit_block_apply_each_revision_once(
    service: Service, database_url: URL
) -> None:
    # r1 holds the lock until the three other runs are connected (and trying it).
    service.write_revision("r1", None, LEDGER + f"    op.execute({until_connected(3)!r})\n")
    service.write_revision("r2", "r1", CONCURRENT_INDEX)
    service.write_revision("r3", "r2", "op.execute(\"INSERT INTO ledger VALUES (0, 'r3')\")")

    runs = service.concurrently(
        [[sys.executable, "-m", "alembic", "upgrade", "head"]] * 4, env=service.env(database_url)
    )

    outputs = "\n".join(output for _, output in runs)
    assert [code for code, _ in runs] == [0] * 4, outputs
    for step in (" -> r1,", "r1 -> r2,", "r2 -> r3,"):
        assert outputs.count(f"Running upgrade {step}") == 1, outputs
    assert "waiting for it to finish" in outputs  # the others did queue
    assert applied_versions(database_url) == ["r3"]
    assert index_validity(database_url, "ledger") == {"ix_ledger_id": True}
    assert sql(database_url, "SELECT count(*) FROM ledger WHERE note = 'r3'")[0] == [(1,)]
    # The session lock went with its session: nothing is left holding it.
    assert advisory_locks(database_url) == 0


def test_statement_timeout_still_fires_after_an_autocommit_block(
    service: Service, database_url: URL
) -> None:
    service.write_revision("r1", None, AUTOCOMMIT_BLOCK + '    op.execute("SELECT pg_sleep(30)")\n')
    code, output = upgrade(service, database_url, MIGRATION_STATEMENT_TIMEOUT_SECONDS="0.5")
    assert code != 0
    assert "canceling statement due to statement timeout" in output, output


def test_lock_timeout_still_fires_after_an_autocommit_block(
    service: Service, database_url: URL
) -> None:
    sql(database_url, "CREATE TABLE busy (id int)")
    service.write_revision(
        "r1", None, AUTOCOMMIT_BLOCK + '    op.add_column("busy", sa.Column("x", sa.Text))\n'
    )
    with table_locked(database_url, "busy"):
        # Without the lock timeout this waits for the holder: the CLI timeout fails it.
        code, output = upgrade(
            service, database_url, MIGRATION_LOCK_TIMEOUT_SECONDS="0.5", MIGRATION_LOCK_RETRIES="0"
        )
    assert code != 0
    assert "canceling statement due to lock timeout" in output, output


def test_a_failure_inside_an_autocommit_block_is_finished_by_a_rerun(
    service: Service, database_url: URL
) -> None:
    service.write_revision(
        "r1", None, LEDGER + "    op.execute(\"INSERT INTO ledger VALUES (1, 'dup')\")\n"
    )
    service.write_revision("r2", "r1", CONCURRENT_INDEX)

    code, output = upgrade(service, database_url)

    # The block committed r1 before it began: r1 stays, r2 is not recorded,
    # and the failed concurrent build left an INVALID index behind.
    assert code != 0 and "could not create unique index" in output, output
    assert applied_versions(database_url) == ["r1"]
    current = service.ok(service.alembic("current", database_url=database_url))
    assert "\nr1\n" in f"\n{current}" and "(head)" not in current, current
    assert index_validity(database_url, "ledger") == {"ix_ledger_id": False}

    sql(database_url, "DELETE FROM ledger WHERE note = 'dup'")
    code, output = upgrade(service, database_url)
    assert code == 0, output
    assert applied_versions(database_url) == ["r2"]
    assert index_validity(database_url, "ledger") == {"ix_ledger_id": True}


def test_a_failure_after_an_autocommit_block_keeps_what_the_block_committed(
    service: Service, database_url: URL
) -> None:
    service.write_revision("r1", None, LEDGER)
    service.write_revision("r2", "r1", CONCURRENT_INDEX)
    service.write_revision("r3", "r2", 'op.execute("SELECT 1 / 0")')

    code, output = upgrade(service, database_url)

    # The run's transaction after the block (r2's version stamp, r3) rolled back;
    # what the block committed (r1, the index) stays. The re-run builds r2's index
    # again: harmless, as every autocommit block must be re-runnable.
    assert code != 0 and "division by zero" in output, output
    assert applied_versions(database_url) == ["r1"]
    assert index_validity(database_url, "ledger") == {"ix_ledger_id": True}

    service.write_revision("r3", "r2", "op.execute(\"INSERT INTO ledger VALUES (0, 'r3')\")")
    code, output = upgrade(service, database_url)
    assert code == 0, output
    assert applied_versions(database_url) == ["r3"]


@pytest.mark.parametrize(
    ("lock", "statement", "expected"),
    [("5", "0", ("5000ms", "0ms")), ("0.25", "30", ("250ms", "30000ms"))],
)
def test_offline_sql_carries_the_timeouts(
    service: Service, lock: str, statement: str, expected: tuple[str, str]
) -> None:
    service.write_revision("r1", None, LEDGER)
    service.write_revision("r2", "r1", CONCURRENT_INDEX)
    env = service.env(
        MIGRATION_LOCK_TIMEOUT_SECONDS=lock, MIGRATION_STATEMENT_TIMEOUT_SECONDS=statement
    )
    result = service.alembic("upgrade", "head", "--sql", env=env)  # no database at all
    script = service.ok(result)
    # Plain (session) SETs before the first BEGIN: they hold past the block's COMMIT too.
    head = script[: script.index("BEGIN;")]
    assert f"SET lock_timeout = '{expected[0]}';" in head
    assert f"SET statement_timeout = '{expected[1]}';" in head
    assert "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix_ledger_id" in script
