"""Migrations run safely: all or nothing, one runner at a time, bounded waits.

Hand-written revisions, the real `alembic` command line, a real PostgreSQL.
"""

from __future__ import annotations

import sys

from database import applied_versions, sql, table_locked, table_names, until_connected
from helpers import Service
from sqlalchemy.engine import URL

LEDGER = """
    op.create_table("ledger", sa.Column("id", sa.Integer, primary_key=True))
"""


def test_a_failing_revision_leaves_the_schema_as_it_was(
    service: Service, database_url: URL
) -> None:
    service.write_revision("r1", None, LEDGER)
    service.ok(service.alembic("upgrade", "r1", database_url=database_url))
    service.write_revision(
        "r2",
        "r1",
        """
        op.add_column("ledger", sa.Column("note", sa.Text))
        op.create_table("half", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("SELECT 1 / 0")
        """,
    )
    service.write_revision("r3", "r2", 'op.create_table("after", sa.Column("id", sa.Integer))')
    result = service.alembic("upgrade", "head", database_url=database_url)

    assert result.returncode != 0
    assert "division by zero" in result.stdout + result.stderr
    assert table_names(database_url) == {"alembic_version", "ledger"}
    columns = sql(
        database_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'ledger'",
    )[0]
    assert [row[0] for row in columns] == ["id"]
    assert applied_versions(database_url) == ["r1"]


def test_eight_concurrent_upgrades_apply_each_revision_once(
    service: Service, database_url: URL
) -> None:
    service.write_revision(
        "r1",
        None,
        f"""
        op.create_table("ledger", sa.Column("revision", sa.Text, nullable=False))
        op.execute({until_connected(7)!r})  # the race open until all eight are in
        op.execute("INSERT INTO ledger VALUES ('r1')")
        """,
    )
    service.write_revision("r2", "r1", "op.execute(\"INSERT INTO ledger VALUES ('r2')\")")
    runs = service.concurrently(
        [[sys.executable, "-m", "alembic", "upgrade", "head"]] * 8, env=service.env(database_url)
    )
    outputs = [output for _, output in runs]

    assert [code for code, _ in runs] == [0] * 8, "\n".join(outputs)
    assert applied_versions(database_url) == ["r2"]
    rows = sql(database_url, "SELECT revision FROM ledger ORDER BY revision")[0]
    assert [row[0] for row in rows] == ["r1", "r2"]
    # Exactly one runner did the work; the others found the database at head.
    assert sum("Running upgrade  -> r1" in output for output in outputs) == 1


def test_a_migration_behind_a_lock_fails_fast(service: Service, database_url: URL) -> None:
    service.write_revision("r1", None, LEDGER)
    service.ok(service.alembic("upgrade", "r1", database_url=database_url))
    service.write_revision("r2", "r1", 'op.add_column("ledger", sa.Column("note", sa.Text))')

    with table_locked(database_url, "ledger"):
        env = service.env(
            database_url, MIGRATION_LOCK_TIMEOUT_SECONDS="0.5", MIGRATION_LOCK_RETRIES="0"
        )
        # Without lock_timeout this blocks until the lock holder lets go:
        # the subprocess timeout turns that into a failure.
        result = service.alembic("upgrade", "head", env=env, timeout=60)

    assert result.returncode != 0
    assert "lock timeout" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert applied_versions(database_url) == ["r1"]


def test_a_statement_over_its_time_limit_is_cancelled(service: Service, database_url: URL) -> None:
    service.write_revision("r1", None, 'op.execute("SELECT pg_sleep(60)")')
    env = service.env(database_url, MIGRATION_STATEMENT_TIMEOUT_SECONDS="0.5")
    result = service.alembic("upgrade", "head", env=env, timeout=60)

    assert result.returncode != 0
    assert "statement timeout" in result.stdout + result.stderr
    assert applied_versions(database_url) == []
