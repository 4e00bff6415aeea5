"""The request path of a rendered `web=fastapi` service: what a request costs on the
wire, and that a restart of PostgreSQL or PgBouncer under load costs no request once
the server is back.

The service gets the benchmark's model, revision and routes (`GET /items/{id}`
through `SessionDep`, `GET /read/items/{id}` through `ReadSessionDep`), as a user
adds them; uvicorn serves it as its image does (the Dockerfile's CMD). Statements
are counted, not assumed: the benchmark's wire proxy (bench/wire_proxy.py) sees
every Query and Execute message the app sends. The restarts run on a PostgreSQL
(and a PgBouncer) of this module's own, in their own xdist group.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from app_under_load import App, Load, get
from database import sql
from helpers import ROOT, Service, render
from servers import Cluster, PgBouncer, private_cluster
from sqlalchemy.engine import URL

sys.path.insert(0, str(ROOT))  # the benchmark's modules: its routes and its wire proxy
from bench.app_variants import ROWS, SEED, prepare_service  # noqa: E402
from bench.wire_proxy import WireProxy, unix_socket  # noqa: E402

pytestmark = pytest.mark.xdist_group("restart")

SECONDS = 30.0  # bound on each wait for a program
CONNECT_TIMEOUT = 2.0  # DATABASE_CONNECT_TIMEOUT_SECONDS of the apps under restart
WRITE, READ = "/bench/items/", "/bench/read/items/"  # bench/app_variants.py's routes
# PgBouncer waits this long (server_login_retry; 15 s by default) before it logs in
# again to a server it could not reach: until then it fails every query itself.
LOGIN_RETRY = 1


@pytest.fixture(scope="module")
def api(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Service:
    service = Service(
        render(copier_template, tmp_path_factory.mktemp("path") / "svc", web="fastapi")
    )
    prepare_service(service)
    return service


def migrated(service: Service, database: URL) -> URL:
    service.ok(service.alembic("upgrade", "head", database_url=database))
    sql(database, *SEED)
    return database


def statements(proxy: WireProxy, port: int, paths: list[str]) -> list[str]:
    """What the app sent for these requests, one after the other, each statement
    shortened to its first word(s); the app's connections warm before."""
    mark = proxy.mark()
    for number, path in enumerate(paths, 1):
        assert get(port, f"{path}{number}")[0] == 200
    count, sent = proxy.since(mark, at_least=3 * len(paths), quiet=0.2)
    assert count == len(sent), "the proxy's log overflowed"
    return ["SELECT" if sql.startswith("SELECT bench_item") else sql for sql in sent]


def test_a_one_query_request_costs_three_statements_on_either_dependency(
    api: Service, database_url: URL
) -> None:
    database = migrated(api, database_url)
    host = str(database.query.get("host") or database.host)
    with WireProxy(unix_socket(host, database.port) or (host, database.port or 5432)) as proxy:
        via_proxy = URL.create(
            "postgresql+asyncpg", database.username, database.password, "127.0.0.1",
            proxy.port, database.database,
        )  # fmt: skip
        # One connection, which every request takes in turn.
        app = App(
            api,
            via_proxy,
            DATABASE_POOL_PRE_PING_IDLE_SECONDS="0.5",
            DATABASE_POOL_SIZE="1",
            DATABASE_POOL_MAX_OVERFLOW="0",
        )
        try:
            statements(proxy, app.port, [WRITE, READ])  # statements prepared
            # A read leaves the connection read-write for the next request.
            sent = statements(proxy, app.port, [WRITE, READ] * 5)
            assert (
                sent
                == ["BEGIN;", "SELECT", "ROLLBACK;", "BEGIN READ ONLY;", "SELECT", "ROLLBACK;"] * 5
            ), sent
            time.sleep(0.7)  # idle longer than DATABASE_POOL_PRE_PING_IDLE_SECONDS
            assert statements(proxy, app.port, [READ]) == [
                "SELECT 1",
                "BEGIN READ ONLY;",
                "SELECT",
                "ROLLBACK;",
            ]
        finally:
            app.stop()


@dataclass
class Restartable:
    cluster: Cluster
    bouncer: PgBouncer | None


@pytest.fixture(scope="module")
def servers() -> Iterator[Restartable]:
    """A PostgreSQL of this module's own, and a PgBouncer in front of it."""
    with private_cluster("restart") as cluster:
        bouncer = PgBouncer(
            cluster.workspace,
            cluster.socket_url(),
            pool_size=8,
            server_login_retry=str(LOGIN_RETRY),
        )
        try:
            yield Restartable(cluster, bouncer)
        finally:
            bouncer.stop()


def restart(servers: Restartable, restarted: str) -> float:
    """Stop and start the server, 0.3 s apart; when it is back for the app."""
    if restarted == "pgbouncer":
        assert servers.bouncer is not None
        servers.bouncer.stop()
        time.sleep(0.3)
        servers.bouncer.start()
        return time.monotonic()
    before = servers.cluster.pid
    servers.cluster.stop("fast")
    time.sleep(0.3)
    servers.cluster.start()
    assert servers.cluster.pid != before
    # Behind PgBouncer, PostgreSQL is back for the app once PgBouncer logs in again.
    return time.monotonic() + (LOGIN_RETRY if "pgbouncer" in restarted else 0)


@pytest.mark.parametrize("restarted", ["postgres", "pgbouncer", "postgres behind pgbouncer"])
def test_after_a_restart_every_request_is_200_again_at_once(
    api: Service, servers: Restartable, restarted: str
) -> None:
    """Under load, then with no request in flight (no failed request has told the pool
    yet: its connections sit there closed). The same process throughout; checks of
    idle connections off (DATABASE_POOL_PRE_PING_IDLE_SECONDS), as under load."""
    database = f"restart_{restarted.replace(' ', '_')}"
    direct = servers.cluster.url(database)
    sql(
        servers.cluster.url(),
        f'DROP DATABASE IF EXISTS "{database}"',
        f'CREATE DATABASE "{database}"',
    )
    migrated(api, direct)
    settings = {
        "DATABASE_CONNECT_TIMEOUT_SECONDS": str(CONNECT_TIMEOUT),
        "DATABASE_POOL_PRE_PING_IDLE_SECONDS": "600",
    }
    url = direct
    if "pgbouncer" in restarted:
        assert servers.bouncer is not None
        url = servers.bouncer.url(database)
        settings["DATABASE_POOLER"] = "transaction"
    app = App(api, url, **settings)
    try:
        with Load(app.port, (WRITE, READ), ROWS, timeout=CONNECT_TIMEOUT * 3) as load:
            time.sleep(0.5)
            back = restart(servers, restarted)
            time.sleep(max(0.0, back - time.monotonic()) + 2.0)
        time.sleep(0.2)
        idle_back = restart(servers, restarted)
        time.sleep(max(0.0, idle_back - time.monotonic()))
        idle = [get(app.port, f"{path}{n}") for n, path in enumerate([WRITE, READ] * 3, 1)]
        assert app.process.poll() is None, app.log.read_text()
    finally:
        app.stop()
    answers = sorted(load.answers, key=lambda answer: answer.started)
    after = [answer for answer in answers if answer.started >= back]
    during = [answer for answer in answers if answer.started < back]
    assert len(after) > 50 and all(answer.status == 200 for answer in during[:10]), answers[:10]
    # Not one request that started once the server was back failed: each connection
    # the restart closed was replaced before a request got it.
    failed = [answer for answer in after if answer.status != 200]
    assert not failed, (failed[:5], app.log.read_text()[-3000:])
    assert [status for status, _ in idle] == [200] * 6, (idle, app.log.read_text()[-3000:])
    slowest = max(answers, key=lambda answer: answer.seconds)
    # None waited out a connect timeout; PgBouncer holds queries while it cannot log
    # in to PostgreSQL (until server_login_retry has passed once it is back).
    bound = CONNECT_TIMEOUT + (1 + LOGIN_RETRY if restarted == "postgres behind pgbouncer" else 0)
    assert slowest.seconds < bound, slowest
    first = after[0]
    print(
        f"{restarted}: {len(during)} requests before the server was back "
        f"({sum(a.status != 200 for a in during)} failed), {len(after)} after, none failed; "
        f"first answered {first.started + first.seconds - back:.3f} s after; "
        f"slowest {slowest.seconds:.2f} s"
    )


# The app's engine, one connection, and an event loop that stops while the server
# restarts (a long synchronous call in a request would do the same): asyncpg has
# not seen the close when the next request takes the connection.
UNSEEN_CLOSE = """\
import asyncio
import sys

from sqlalchemy import text

from app.core.config import get_settings
from app.infra.engines import create_app_engine


async def main() -> None:
    engine = create_app_engine(get_settings())
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    print("ready", flush=True)
    sys.stdin.readline()  # blocks the loop
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        print("answered")
    except Exception as exc:
        print("failed:", type(exc).__name__)
    await engine.dispose()


asyncio.run(main())
"""


@pytest.mark.parametrize(("idle_seconds", "outcome"), [("0", "answered"), ("600", "failed")])
def test_a_close_the_app_has_not_seen_is_caught_by_the_ping(
    api: Service, servers: Restartable, idle_seconds: str, outcome: str
) -> None:
    """Pinged after any idle time, the connection is replaced; checked only for a close
    asyncpg has seen, the request fails (and the pool replaces its older connections)."""
    api.write("unseen_close.py", UNSEEN_CLOSE)
    program = subprocess.Popen(
        [sys.executable, "unseen_close.py"],
        cwd=api.path,
        env=api.env(servers.cluster.url(), DATABASE_POOL_PRE_PING_IDLE_SECONDS=idle_seconds),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert program.stdout is not None and program.stdout.readline() == "ready\n"
        restart(servers, "postgres")
        output = program.communicate("\n", timeout=SECONDS)[0]
    finally:
        program.kill()  # a no-op once it has ended
    assert output.startswith(outcome), output
