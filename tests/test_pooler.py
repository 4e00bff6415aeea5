"""Through a real PgBouncer in transaction mode (Debian 12's 1.18 here), in front of the
session's server: the service's own engine under load, and migrations through the
pooler and through DATABASE_MIGRATION_URL.
"""

from __future__ import annotations

import re
import sys

import pytest
from database import advisory_locks, applied_versions, sql
from helpers import Service, one_line_failure
from servers import PgBouncer
from sqlalchemy.engine import URL
from test_url_parameters import ENGINE_PROGRAM

pytestmark = pytest.mark.xdist_group("pgbouncer")

# 20 tasks x 15 units of work through the service's engine; each unit checks its
# results, which carry the process's tag (two processes share server connections).
LOAD = """\
import asyncio
import sys

from sqlalchemy import text

from app.core.config import get_settings
from app.infra.engines import create_app_engine

TAG = int(sys.argv[1])


async def unit(engine, task, i, tally):
    try:
        async with engine.begin() as connection:
            a = await connection.scalar(text("SELECT CAST(:x AS int) * 1000 + :y"), {"x": TAG, "y": task})
            b = await connection.scalar(text("SELECT :s || CAST(CAST(:n AS int) AS text)"), {"s": f"p{TAG}-", "n": i})
        tally["wrong"] += (a, b) != (TAG * 1000 + task, f"p{TAG}-{i}")
    except Exception as exc:
        tally["errors"] += 1
        tally["first"] = tally.get("first") or str(exc).splitlines()[0]


async def main():
    engine = create_app_engine(get_settings())
    tally = {"errors": 0, "wrong": 0}

    async def task(t):
        for i in range(15):
            await unit(engine, t, i, tally)

    await asyncio.gather(*(task(t) for t in range(20)))
    await engine.dispose()
    print(f"errors={tally['errors']} wrong={tally['wrong']} first={tally.get('first')}")


asyncio.run(main())
"""
LEDGER = """
    op.create_table("ledger", sa.Column("revision", sa.Text, nullable=False))
    op.execute("SELECT pg_sleep(0.3)")  # keep the race window open
    op.execute("INSERT INTO ledger VALUES ('r1')")
"""
CONCURRENT_INDEX = """
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_ledger", "ledger", ["revision"], postgresql_concurrently=True, if_not_exists=True
        )
"""


@pytest.fixture
def pooled_url(pgbouncer: PgBouncer, database_url: URL) -> URL:
    """The test's database, through the pooler."""
    return pgbouncer.url(str(database_url.database))


def load(service: Service, url: URL, **settings: str) -> list[tuple[int, int, str]]:
    """(errors, wrong results, first error) of each of two processes running LOAD."""
    service.write("load.py", LOAD)
    processes = service.concurrently(
        [[sys.executable, "load.py", str(tag)] for tag in (1, 2)], env=service.env(url, **settings)
    )
    results = []
    for code, output in processes:
        assert code == 0, output
        match = re.search(r"errors=(\d+) wrong=(\d+) first=(.*)", output)
        assert match, output
        results.append((int(match[1]), int(match[2]), match[3]))
    return results


def test_the_service_engine_is_safe_behind_a_transaction_pooler(
    service: Service, pooled_url: URL
) -> None:
    results = load(service, pooled_url, DATABASE_POOLER="transaction")
    assert [(errors, wrong) for errors, wrong, _ in results] == [(0, 0), (0, 0)], results


def test_the_same_load_fails_with_asyncpg_statement_cache(
    service: Service, pooled_url: URL
) -> None:
    # Only the statement cache differs (the server-side statement timeout, a startup
    # parameter PgBouncer refuses, is off here; the next test covers it).
    results = load(
        service, pooled_url, DATABASE_POOLER="none", DATABASE_STATEMENT_TIMEOUT_SECONDS="0"
    )
    assert sum(errors + wrong for errors, wrong, _ in results) > 0, results
    assert any("prepared statement" in first for _, _, first in results), results


def test_an_undeclared_pooler_is_named_in_the_error(service: Service, pooled_url: URL) -> None:
    # DATABASE_POOLER unset ("none"): the app's statement timeout goes as a startup
    # parameter, which PgBouncer refuses. The line /health logs says what to set.
    service.write(
        "probe.py",
        "import asyncio\n\nfrom sqlalchemy import text\n\n"
        "from app.core.config import get_settings\n"
        "from app.infra.engines import create_app_engine\n"
        "from app.infra.errors import describe_database_error\n\n\n"
        "async def main() -> None:\n"
        "    engine = create_app_engine(get_settings())\n"
        "    try:\n"
        "        async with engine.connect() as connection:\n"
        '            await connection.execute(text("SELECT 1"))\n'
        "    except Exception as exc:\n"
        "        print(describe_database_error(exc, engine.url))\n"
        "    await engine.dispose()\n\n\n"
        "asyncio.run(main())\n",
    )
    output = service.ok(service.run(sys.executable, "probe.py", env=service.env(pooled_url)))
    assert "unsupported startup parameter: statement_timeout" in output, output
    assert "set DATABASE_POOLER=transaction" in output, output


def test_startup_options_are_refused_in_one_line_when_pooled(
    service: Service, pooled_url: URL
) -> None:
    url = pooled_url.update_query_dict({"options": "-c search_path=audit"})
    result = service.alembic("upgrade", "head", env=service.env(url, DATABASE_POOLER="transaction"))
    one_line_failure(result, "search_path", "transaction-mode pooler", "ALTER ROLE")


def upgrade_at_once(service: Service, url: URL, **settings: str) -> list[str]:
    runs = service.concurrently(
        [[sys.executable, "-m", "alembic", "upgrade", "head"]] * 3, env=service.env(url, **settings)
    )
    assert [code for code, _ in runs] == [0] * 3, "\n".join(output for _, output in runs)
    return [output for _, output in runs]


def test_concurrent_upgrades_through_the_pooler_apply_each_revision_once(
    service: Service, pooled_url: URL, database_url: URL
) -> None:
    service.write_revision("r1", None, LEDGER)
    service.write_revision("r2", "r1", "op.execute(\"INSERT INTO ledger VALUES ('r2')\")")

    outputs = upgrade_at_once(service, pooled_url, DATABASE_POOLER="transaction")

    assert sum("Running upgrade  -> r1" in output for output in outputs) == 1
    assert applied_versions(database_url) == ["r2"]
    assert sql(database_url, "SELECT revision FROM ledger ORDER BY 1")[0] == [("r1",), ("r2",)]
    # Transaction-scoped: no lock outlives its transaction on a shared server connection.
    assert advisory_locks(database_url) == 0


def test_an_autocommit_block_through_the_pooler_is_refused_before_anything_applies(
    service: Service, pooled_url: URL, database_url: URL
) -> None:
    service.write_revision("r1", None, LEDGER)
    service.write_revision("r2", "r1", CONCURRENT_INDEX)
    result = service.alembic(
        "upgrade", "head", env=service.env(pooled_url, DATABASE_POOLER="transaction")
    )
    one_line_failure(
        result, "autocommit_block()", "DATABASE_MIGRATION_URL", "nothing of this run", progress=True
    )
    assert applied_versions(database_url) == []


def test_the_migration_url_bypasses_the_pooler_autocommit_blocks_included(
    service: Service, pooled_url: URL, database_url: URL
) -> None:
    service.write_revision("r1", None, LEDGER)
    service.write_revision("r2", "r1", CONCURRENT_INDEX)
    direct = database_url.render_as_string(hide_password=False)

    outputs = upgrade_at_once(
        service, pooled_url, DATABASE_POOLER="transaction", DATABASE_MIGRATION_URL=direct
    )

    assert sum("Running upgrade r1 -> r2" in output for output in outputs) == 1
    assert applied_versions(database_url) == ["r2"]


def test_the_app_statement_timeout_holds_through_the_pooler(
    service: Service, pooled_url: URL
) -> None:
    # PgBouncer refuses statement_timeout as a startup parameter: asyncpg cancels
    # the statement from the client instead (PgBouncer forwards the cancel).
    service.write("engine_probe.py", ENGINE_PROGRAM)
    env = service.env(
        pooled_url, DATABASE_POOLER="transaction", DATABASE_STATEMENT_TIMEOUT_SECONDS="0.3"
    )
    output = service.ok(service.run(sys.executable, "engine_probe.py", env=env, timeout=30))
    assert "timed out (no answer within the connect or statement timeout)" in output, output
    assert "slept" not in output
