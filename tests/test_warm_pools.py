"""Warm pools through a deploy's migrations: a rendered `web=fastapi` service under
uvicorn (its pool filled, its statements prepared) answers every request while the
operations that pre-deploy (expand) and post-deploy (contract) revisions may hold run
against its database, one after the other (app/infra/stale_statements.py).

Two processes of the same app serve at once: the service as rendered, and one whose
engines go without stale_statements.py's retry. That one must fail, after exactly
the operations that change what a cached statement returns (docs/rolling-deploys.md):
so the run did make statements stale, and the first app recovered from it.

Routes: the example's `GET /items/{id}` (the ORM's `session.get`: explicit columns)
and a `GET /star/{id}` added here (`SELECT *` in text, as services write too).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from app_under_load import App, Load
from database import sql
from helpers import Service, render
from sqlalchemy.engine import URL

ROWS = 20
SETTLE = 0.3  # seconds of load after each operation
ORM, STAR = "/items/", "/star/"

ROUTES = """

# Test-only (tests/test_warm_pools.py): a `SELECT *` route, and the app without the
# retry of stale statements when WARM_POOLS_UNFIXED is set.
import os  # noqa: E402

from sqlalchemy import text  # noqa: E402

from app.infra import engines  # noqa: E402
from app.infra.web.database import SessionDep  # noqa: E402

if os.environ.get("WARM_POOLS_UNFIXED"):
    engines.retry_stale_statements = lambda engine: None  # read at start-up (lifespan)


@app.get("/star/{item_id}")
async def star(item_id: int, session: SessionDep) -> dict[str, int]:
    result = await session.execute(text("SELECT * FROM item WHERE id = :id"), {"id": item_id})
    return {"columns": len(result.one())}
"""

# Before the apps start: rows, and an ENUM column for the expand step to extend.
SETUP = (
    "CREATE TYPE mood AS ENUM ('glad')",
    "ALTER TABLE item ADD COLUMN mood mood DEFAULT 'glad'",
    f"INSERT INTO item (name) SELECT 'item ' || n FROM generate_series(1, {ROWS}) n",
)
# (operation, its SQL, whether it changes what a cached statement of the app returns)
EXPAND = (
    ("add a nullable column", "ALTER TABLE item ADD COLUMN note text", True),
    ("add a column with a server default", "ALTER TABLE item ADD COLUMN rank int DEFAULT 0", True),
    ("create a table", "CREATE TABLE tag (id bigint PRIMARY KEY, item_id bigint)", False),
    (
        "create an index concurrently",
        "CREATE INDEX CONCURRENTLY ix_item_name ON item (name)",
        False,
    ),
    ("add an enum label", "ALTER TYPE mood ADD VALUE 'calm'", False),
)
CONTRACT = (
    ("drop a column", "ALTER TABLE item DROP COLUMN note", True),
    (
        "change a selected column's type",
        "ALTER TABLE item ALTER COLUMN name TYPE varchar(200)",
        True,
    ),
    ("set NOT NULL", "ALTER TABLE item ALTER COLUMN mood SET NOT NULL", False),
    ("drop a table", "DROP TABLE tag", False),
)


@pytest.fixture(scope="module")
def api(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Service:
    service = Service(
        render(copier_template, tmp_path_factory.mktemp("warm") / "svc", web="fastapi")
    )
    with (service.path / "app" / "main.py").open("a") as main:
        main.write(ROUTES)
    return service


def by_operation(load: Load, started: list[tuple[str, float]]) -> dict[str, tuple[int, int]]:
    """(answers, failed answers) per operation: each answer counted for the operation
    last started before it ended."""
    counts = {name: (0, 0) for name, _ in started}
    for answer in load.answers:
        ended = answer.started + answer.seconds
        before = [name for name, at in started if at <= ended]
        if before:
            answers, failed = counts[before[-1]]
            counts[before[-1]] = (answers + 1, failed + (answer.status != 200))
    return counts


def test_warm_pools_answer_every_request_through_expand_and_contract(
    api: Service, database_url: URL
) -> None:
    api.ok(api.run(sys.executable, "-m", "app.infra.migrate", database_url=database_url))
    sql(database_url, *SETUP)
    apps = {"fixed": App(api, database_url)}
    try:
        apps["unfixed"] = App(api, database_url, WARM_POOLS_UNFIXED="1")
        loads = {
            name: Load(app.port, (ORM, STAR), ROWS, timeout=10.0) for name, app in apps.items()
        }
        started: list[tuple[str, float]] = []
        with loads["fixed"], loads["unfixed"]:
            time.sleep(0.5)  # every pooled connection has prepared both statements
            for name, statement, _ in EXPAND + CONTRACT:
                started.append((name, time.monotonic()))
                sql(database_url, statement)
                time.sleep(SETTLE)
        for app in apps.values():
            assert app.process.poll() is None, app.log.read_text()[-3000:]
    finally:
        for app in apps.values():
            app.stop()
    fixed, unfixed = (by_operation(loads[name], started) for name in ("fixed", "unfixed"))
    print(f"answers, failed by operation: {fixed}; without the retry: {unfixed}")
    for counts in (fixed, unfixed):  # each operation was followed by requests to both apps
        assert all(answers >= 5 for answers, _ in counts.values()), counts
    log = apps["fixed"].log.read_text()[-3000:]
    assert not any(failed for _, failed in fixed.values()), (fixed, log)
    changing = {name for name, _, changes in EXPAND + CONTRACT if changes}
    assert {name for name, (_, failed) in unfixed.items() if failed} == changing, unfixed
