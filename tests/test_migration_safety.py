"""Migrations run safely: all or nothing, one runner at a time, bounded waits.

Hand-written revisions, the real `alembic` command line, a real PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

from helpers import Service, sql, table_names
from sqlalchemy.engine import URL

LEDGER = """
    op.create_table("ledger", sa.Column("id", sa.Integer, primary_key=True))
"""


def write_revision(service: Service, revision: str, down: str | None, upgrade: str) -> None:
    """A revision file as a user would write one (downgrade is not exercised here)."""
    body = textwrap.indent(textwrap.dedent(upgrade).strip(), "    ")
    service.write(
        f"alembic/versions/{revision}.py",
        f'"""{revision}"""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f"revision = {revision!r}\ndown_revision = {down!r}\n"
        f"branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{body}\n\n\ndef downgrade() -> None:\n    pass\n",
    )


def applied_versions(url: URL) -> list[str]:
    if "alembic_version" not in table_names(url):
        return []
    return [row[0] for row in sql(url, "SELECT version_num FROM alembic_version")[0]]


def test_a_failing_revision_leaves_the_schema_as_it_was(
    service: Service, database_url: URL
) -> None:
    write_revision(service, "r1", None, LEDGER)
    service.ok(service.alembic("upgrade", "r1", database_url=database_url))
    write_revision(
        service,
        "r2",
        "r1",
        """
        op.add_column("ledger", sa.Column("note", sa.Text))
        op.create_table("half", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("SELECT 1 / 0")
        """,
    )
    write_revision(service, "r3", "r2", 'op.create_table("after", sa.Column("id", sa.Integer))')
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
    write_revision(
        service,
        "r1",
        None,
        """
        op.create_table("ledger", sa.Column("revision", sa.Text, nullable=False))
        op.execute("SELECT pg_sleep(0.5)")  # keep the race window open
        op.execute("INSERT INTO ledger VALUES ('r1')")
        """,
    )
    write_revision(service, "r2", "r1", "op.execute(\"INSERT INTO ledger VALUES ('r2')\")")
    env = service.env(database_url)
    command = [sys.executable, "-m", "alembic", "upgrade", "head"]
    runners = [
        subprocess.Popen(
            command,
            cwd=service.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [runner.communicate(timeout=120)[0] for runner in runners]

    assert [runner.returncode for runner in runners] == [0] * 8, "\n".join(outputs)
    assert applied_versions(database_url) == ["r2"]
    rows = sql(database_url, "SELECT revision FROM ledger ORDER BY revision")[0]
    assert [row[0] for row in rows] == ["r1", "r2"]
    # Exactly one runner did the work; the others found the database at head.
    assert sum("Running upgrade  -> r1" in output for output in outputs) == 1


def hold_lock(url: URL, table: str, acquired: threading.Event, release: threading.Event) -> None:
    """Keep an ACCESS EXCLUSIVE lock on `table` until `release` is set."""
    import asyncio

    from sqlalchemy import pool, text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                acquired.set()
                while not release.is_set():
                    await asyncio.sleep(0.05)
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_a_migration_behind_a_lock_fails_fast(service: Service, database_url: URL) -> None:
    write_revision(service, "r1", None, LEDGER)
    service.ok(service.alembic("upgrade", "r1", database_url=database_url))
    write_revision(service, "r2", "r1", 'op.add_column("ledger", sa.Column("note", sa.Text))')

    acquired, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_lock, args=(database_url, "ledger", acquired, release))
    holder.start()
    try:
        assert acquired.wait(30)
        env = service.env(database_url, MIGRATION_LOCK_TIMEOUT_SECONDS="0.5")
        # Without lock_timeout this blocks until the lock holder lets go:
        # the subprocess timeout turns that into a failure.
        result = service.alembic("upgrade", "head", env=env, timeout=60)
    finally:
        release.set()
        holder.join()

    assert result.returncode != 0
    assert "lock timeout" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert applied_versions(database_url) == ["r1"]


def test_a_statement_over_its_time_limit_is_cancelled(service: Service, database_url: URL) -> None:
    write_revision(service, "r1", None, 'op.execute("SELECT pg_sleep(60)")')
    env = service.env(database_url, MIGRATION_STATEMENT_TIMEOUT_SECONDS="0.5")
    result = service.alembic("upgrade", "head", env=env, timeout=60)

    assert result.returncode != 0
    assert "statement timeout" in result.stdout + result.stderr
    assert applied_versions(database_url) == []
