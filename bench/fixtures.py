"""Per-test cost of the service's database fixtures beside the common peer's.

All four run in one rendered service, on the bench's server (TEST_DATABASE_URL),
with the same migrations: `db_session` (a rolled-back transaction), `database_url`
(a clone of the migrated template database), pytest-postgresql's `postgresql`
fixture (its noproc mode on that server, migrations loaded once into its template
database through its `load` hook), and creating and migrating a database per test.
Per-test cost: a clock inside each run (bench_clock below) from the start of the
second test to the start of the last, over the tests between; the session's start-up
(interpreter, first migration, in the first test's set-up) and tear-down are left out.
"""

from __future__ import annotations

from collections.abc import Callable

from helpers import Service, render

from .common import PYTHON, Context, Row, alternate, check
from .projects import with_models

# name: (module header, one test); each test uses what its fixture hands it.
SUITES = {
    "db_session": (
        "from sqlalchemy import text\nfrom sqlalchemy.ext.asyncio import AsyncSession\n",
        "async def test_{i}(db_session: AsyncSession) -> None:\n"
        "    await db_session.execute(text('SELECT 1'))\n",
    ),
    "database_url": (
        "from sqlalchemy.engine import URL\n",
        "def test_{i}(database_url: URL) -> None:\n    assert database_url.database\n",
    ),
    "pytest-postgresql": (
        '''import os

from alembic import command
from pytest_postgresql import factories
from sqlalchemy import pool
from sqlalchemy.engine import URL, make_url

from app.infra.database_url import parse_database_url
from app.infra.engines import engine_for

from .infra.db_fixtures import make_alembic_config

SERVER = make_url(os.environ["TEST_DATABASE_URL"])


def migrate(host, port, user, dbname, password=None, **_):
    """pytest-postgresql's `load` hook: its template database goes to head."""
    url = URL.create(
        "postgresql+asyncpg", user, password, None, int(port), dbname, {"host": host}
    )
    config = make_alembic_config()
    config.attributes["connection"] = engine_for(parse_database_url(url), poolclass=pool.NullPool)
    command.upgrade(config, "head")


postgresql_noproc = factories.postgresql_noproc(
    host=SERVER.query["host"],
    port=SERVER.port or 5432,
    user=SERVER.username,
    password=SERVER.password or None,
    dbname="peer",
    load=[migrate],
)
postgresql = factories.postgresql("postgresql_noproc")
''',
        "def test_{i}(postgresql) -> None:\n    postgresql.execute('SELECT 1')\n",
    ),
    "create+migrate": (
        """from collections.abc import Iterator

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL


@pytest.fixture
def migrated_per_test(empty_database_url: URL, alembic_config: Config) -> Iterator[URL]:
    command.upgrade(alembic_config, "head")
    yield empty_database_url
""",
        "def test_{i}(migrated_per_test: URL) -> None:\n    assert migrated_per_test.database\n",
    ),
}
HOW = {
    "db_session": "rolled-back transaction, SELECT 1",
    "database_url": "clone of the migrated template database",
    "pytest-postgresql": "`postgresql` fixture, noproc + load, SELECT 1",
    "create+migrate": "new database + alembic upgrade head",
}
PEERS = ("pytest-postgresql", "create+migrate")
# A pytest plugin (-p bench_clock): seconds per test, written to $BENCH_CLOCK.
CLOCK = """import os
import time

marks = []


def pytest_runtest_logstart(nodeid, location):
    marks.append(time.perf_counter())


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_CLOCK"], "w") as out:
        out.write(repr((marks[-1] - marks[1]) / (len(marks) - 2)))
"""


def rows(ctx: Context) -> list[Row]:
    tests, models = (10, 5) if ctx.quick else (200, 20)
    service = Service(render(ctx.template, ctx.workdir / "fixtures"))
    with_models(service.path, models)
    for index, (header, test) in enumerate(SUITES.values()):
        body = "\n\n".join(test.format(i=i) for i in range(tests))
        service.write(f"tests/test_bench_{index}.py", f"{header}\n\n{body}")
    plugins = ctx.workdir / "plugins"
    plugins.mkdir()
    (plugins / "bench_clock.py").write_text(CLOCK)
    clock = ctx.workdir / "clock"
    env = service.env(
        TEST_DATABASE_URL=ctx.server.render_as_string(hide_password=False),
        PYTHONPATH=str(plugins),
        BENCH_CLOCK=str(clock),
    )

    def suite(index: int, name: str) -> Callable[[], float]:
        plugin = ("-p", "pytest_postgresql") if name == "pytest-postgresql" else ()
        command = (PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench_clock")

        def action() -> float:
            path = f"tests/test_bench_{index}.py"
            check(service.run(*command, *plugin, path, env=env, timeout=1800))
            return float(clock.read_text())

        return action

    medians = alternate(ctx, **{name: suite(index, name) for index, name in enumerate(SUITES)})
    per_test = {name: seconds * 1000 for name, seconds in medians.items()}
    best_peer = min(PEERS, key=per_test.__getitem__)
    result = []
    for name in SUITES:
        reference = ""
        if name not in PEERS:
            ratio = per_test[name] / per_test[best_peer]
            reference = f"{best_peer} {per_test[best_peer]:.1f} ms ({ratio:.2f}x)"
        result.append(
            (
                f"per test: {name}",
                f"{tests} tests, {models} revisions; {HOW[name]}",
                f"{per_test[name]:.1f} ms",
                reference,
            )
        )
    return result
