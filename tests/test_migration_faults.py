"""The server goes away in the middle of a run: one line naming the cause and what the
run was doing, a non-zero exit, nothing half-applied, and a re-run reaches head.

On a PostgreSQL of this module's own (`faults`), which the tests stop (`pg_ctl stop
-m immediate`, or SIGKILL of the postmaster) and start again; through the real
`alembic` command line and the migrate step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from uuid import uuid4

import pytest
from background import Background
from database import applied_versions, sql
from helpers import Service
from servers import Cluster, private_cluster, running
from sqlalchemy.engine import URL

pytestmark = pytest.mark.xdist_group("faults")

BOUND = 60.0  # no wait in this module is longer
MIGRATE_STEP = (sys.executable, "-m", "app.infra.migrate")
ALEMBIC = (sys.executable, "-m", "alembic")
# Re-runnable; sleeps while the test stops the server, not once it is back (SLEEP=0).
TRANSACTIONAL = """
    import os

    op.execute("CREATE TABLE IF NOT EXISTS ledger (id int)")
    op.execute(f"SELECT pg_sleep({os.environ.get('SLEEP', '0')})")
"""
AUTOCOMMIT = """
    import os

    op.execute("CREATE TABLE IF NOT EXISTS ledger (id int)")
    with op.get_context().autocommit_block():
        op.execute(f"SELECT pg_sleep({os.environ.get('SLEEP', '0')})")
"""


@pytest.fixture(scope="session")
def faults_server() -> Iterator[Cluster]:
    """A PostgreSQL the tests of this module stop, kill and start again."""
    with private_cluster("faults") as cluster:
        yield cluster


@pytest.fixture
def faults_url(faults_server: Cluster) -> Iterator[URL]:
    """A fresh database on the (running) faults server."""
    start(faults_server)
    name = f"f_{uuid4().hex[:12]}"
    faults_server.psql(f"CREATE DATABASE {name}")
    try:
        yield faults_server.url(name)
    finally:
        start(faults_server)  # a test that failed may have left it stopped
        faults_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start(cluster: Cluster) -> None:
    """Start, unless it runs; after a SIGKILL of the postmaster its children may take a
    moment to exit (until then a new postmaster refuses their shared memory)."""
    deadline = time.monotonic() + BOUND
    while cluster.pid is None or not running(cluster.pid):
        try:
            cluster.start()
        except subprocess.CalledProcessError:
            assert time.monotonic() < deadline, "the faults server did not start again"
            time.sleep(0.2)


def kill_postmaster(cluster: Cluster) -> None:
    pid = cluster.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + BOUND
    while running(pid):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def in_background(service: Service, command: tuple[str, ...], url: URL, **env: str) -> Background:
    """One command in the service, its output read as it comes."""
    return Background(service, command, url, bound=BOUND, **env)


def wait_until(cluster: Cluster, database: str, condition: str) -> None:
    """Until `SELECT count(*) FROM pg_stat_activity WHERE <condition>` is not 0."""
    deadline = time.monotonic() + BOUND
    query = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' AND {condition}"
    while cluster.psql(query) == "0":
        assert time.monotonic() < deadline, condition
        time.sleep(0.05)


def failure_line(code: int, lines: list[str], *needles: str) -> str:
    """Failed, in one `FAILED:` line holding `needles`; anything else is a progress line."""
    assert code != 0, lines
    failed = [line for line in lines if line.startswith("FAILED: ")]
    assert len(failed) == 1, lines
    assert all(line in failed or line.startswith(("INFO ", "WARNI ")) for line in lines), lines
    assert len(lines) <= 5, lines
    assert not any("Traceback" in line for line in lines), lines
    for needle in needles:
        assert needle in failed[0], failed[0]
    return failed[0]


@pytest.mark.parametrize(
    ("command", "revision", "stop"),
    [
        (ALEMBIC, TRANSACTIONAL, "immediate"),
        (ALEMBIC, AUTOCOMMIT, "immediate"),
        (MIGRATE_STEP, AUTOCOMMIT, "kill"),
    ],
    ids=["transactional-stopped", "autocommit-block-stopped", "migrate-step-postmaster-killed"],
)
def test_the_server_going_away_mid_revision_is_one_line_and_a_rerun_reaches_head(
    service: Service,
    faults_server: Cluster,
    faults_url: URL,
    command: tuple[str, ...],
    revision: str,
    stop: str,
) -> None:
    service.write_revision("r1", None, revision)
    upgrade = (*command, "upgrade", "head") if command == ALEMBIC else command
    run = in_background(service, upgrade, faults_url, SLEEP="60")
    wait_until(faults_server, str(faults_url.database), "query LIKE 'SELECT pg_sleep%'")
    if stop == "kill":
        kill_postmaster(faults_server)
    else:
        faults_server.stop(mode=stop)
    code, lines, _ = run.finish()

    endpoint = f"127.0.0.1:{faults_server.port}/{faults_url.database}"
    failure_line(code, lines, f"lost the connection to PostgreSQL at {endpoint} while applying r1")

    start(faults_server)
    assert applied_versions(faults_url) == []  # r1's version row was never committed
    rerun = in_background(service, upgrade, faults_url)
    code, lines, _ = rerun.finish()
    assert code == 0, lines
    assert applied_versions(faults_url) == ["r1"]


class Holder:
    """psql holding what `sql` takes (a lock) until the server goes away or it is killed."""

    def __init__(self, cluster: Cluster, database: str, sql: str) -> None:
        self.process = subprocess.Popen(
            [
                str(cluster.bindir / "psql"), "-X", "-q", "-h", str(cluster.datadir),
                "-p", str(cluster.port), "-U", "postgres", "-d", database,
                "-c", f"BEGIN; {sql}; SELECT pg_sleep({BOUND});",
            ],
            user=cluster.workspace.user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(BOUND)


def test_the_server_going_away_during_the_lock_wait_is_one_line(
    service: Service, faults_server: Cluster, faults_url: URL
) -> None:
    database = str(faults_url.database)
    holder = Holder(faults_server, database, "SELECT pg_advisory_lock(x'616C656D'::int)")
    try:
        wait_until(faults_server, database, "wait_event = 'PgSleep'")
        run = in_background(service, (*ALEMBIC, "upgrade", "head"), faults_url)
        deadline = time.monotonic() + BOUND
        while not any("Another migration run holds the lock" in line for line in run.lines):
            assert time.monotonic() < deadline and run.process.poll() is None, run.lines
            time.sleep(0.02)
        faults_server.stop(mode="immediate")
        code, lines, _ = run.finish()
    finally:
        holder.stop()
    failure_line(
        code, lines, "lost the connection to PostgreSQL at", "while waiting for the migration lock"
    )


@pytest.mark.parametrize(
    "command",
    [("check",), ("revision", "--autogenerate", "-m", "x")],
    ids=["check", "autogenerate"],
)
def test_the_server_going_away_while_comparing_the_models_is_one_line(
    service: Service, faults_server: Cluster, faults_url: URL, command: tuple[str, ...]
) -> None:
    # Both read alembic_version before they compare: held here, that read waits.
    sql(faults_url, "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    database = str(faults_url.database)
    holder = Holder(faults_server, database, "LOCK TABLE alembic_version")
    try:
        wait_until(faults_server, database, "wait_event = 'PgSleep'")
        run = in_background(
            service, (*ALEMBIC, *command), faults_url, MIGRATION_LOCK_TIMEOUT_SECONDS="0"
        )
        wait_until(faults_server, database, "wait_event_type = 'Lock'")
        faults_server.stop(mode="immediate")
        code, lines, _ = run.finish()
    finally:
        holder.stop()
    failure_line(code, lines, "lost the connection", "while comparing the models with the database")
    assert service.revisions() == []
