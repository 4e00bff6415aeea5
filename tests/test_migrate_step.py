"""The deploy's migrate step, `python -m app.infra.migrate`, as a release phase or a
Kubernetes Job runs it: against a PostgreSQL this module starts late, never,
for several steps at once, and with a wrong password or database.

Each test prints its timings (`pytest -rP` shows them).
"""

from __future__ import annotations

import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from background import Background
from database import sql
from helpers import Service
from servers import Cluster, private_cluster
from sqlalchemy.engine import URL

PASSWORD = "s3cret-Pw"
WAIT_LINE = "Database not reachable yet"
STEP_SECONDS = 60.0  # no step in this module may run longer
# Two revisions: a table, then one row per time it is applied (see the second).
REVISIONS = Path(__file__).parent / "data" / "revisions"


@pytest.fixture(scope="module")
def service(default_render: Path, tmp_path_factory: pytest.TempPathFactory) -> Service:
    copy = Service(Path(shutil.copytree(default_render, tmp_path_factory.mktemp("mig") / "svc")))
    for revision in REVISIONS.glob("*.py"):
        shutil.copy(revision, copy.path / "alembic" / "versions")
    return copy


@pytest.fixture(scope="module")
def server() -> Iterator[Cluster]:
    """A PostgreSQL of the module's own, which tests stop and start; passwords required."""
    with private_cluster("migrate", password=PASSWORD, start=False) as cluster:
        yield cluster


@pytest.fixture
def stopped(server: Cluster) -> Cluster:
    server.stop()
    return server


@pytest.fixture
def running(server: Cluster) -> Cluster:
    if server.pid is None:
        server.start()
    return server


class Step(Background):
    """One `python -m app.infra.migrate` process, timed from its start."""

    def __init__(self, service: Service, url: URL | str | None, **settings: str) -> None:
        command = [sys.executable, "-m", "app.infra.migrate"]
        super().__init__(service, command, url, bound=STEP_SECONDS, **settings)


def assert_one_failure_line(lines: list[str], *needles: str) -> str:
    """Exactly one FAILED line; anything else is a logged wait. No traceback, no password."""
    failed = [line for line in lines if line.startswith("FAILED: ")]
    assert len(failed) == 1, lines
    assert all(line in failed or WAIT_LINE in line for line in lines), lines
    assert not any("Traceback" in line or PASSWORD in line for line in lines), lines
    for needle in needles:
        assert needle in failed[0], failed[0]
    return failed[0]


def waited(failed: str) -> float:
    """The seconds the step itself says it waited (start-up time not included)."""
    match = re.search(r"still not reachable after ([\d.]+) s", failed)
    assert match, failed
    return float(match[1])


def books(server: Cluster, database: str) -> int:
    return int(sql(server.socket_url(database), "SELECT count(*) FROM book")[0][0][0])


def test_waits_for_a_server_that_comes_up_late(service: Service, stopped: Cluster) -> None:
    step = Step(
        service,
        stopped.socket_url(),
        MIGRATION_WAIT_FOR_DATABASE_SECONDS="30",
        MIGRATION_WAIT_INTERVAL_SECONDS="0.25",
    )
    step.wait_for(WAIT_LINE, 3)  # the step finds no socket, three times
    stopped.start(wait=False)  # up while the step keeps trying
    up_after = time.monotonic() - step.started
    code, lines, seconds = step.finish()
    assert code == 0, lines
    waits = [line for line in lines if WAIT_LINE in line]
    assert len(waits) >= 3, lines
    assert "No such file or directory" in waits[0]
    assert any("Database reachable after" in line for line in lines), lines
    assert any("Running upgrade 0001 -> 0002" in line for line in lines), lines
    assert books(stopped, "postgres") == 1
    assert seconds < up_after + 10, (up_after, seconds)
    print(f"server up after {up_after:.1f} s; step done after {seconds:.1f} s, {len(waits)} waits")
    print("\n".join(waits))


def test_gives_up_within_the_bound(service: Service, stopped: Cluster) -> None:
    step = Step(
        service,
        stopped.socket_url(),
        MIGRATION_WAIT_FOR_DATABASE_SECONDS="1",
        MIGRATION_WAIT_INTERVAL_SECONDS="0.25",
    )
    code, lines, seconds = step.finish()
    assert code == 1, lines
    failed = assert_one_failure_line(
        lines, "cannot connect to PostgreSQL at", "still not reachable after 1."
    )
    assert len(lines) - 1 >= 3, lines  # waits logged before giving up
    assert 1.0 <= waited(failed) < 1.5, failed  # the bound, not the 60 s default
    assert seconds < 15.0, seconds  # interpreter start-up on a busy machine included
    print(f"gave up after {seconds:.1f} s: {failed}")


def test_concurrent_steps_apply_each_revision_once(service: Service, running: Cluster) -> None:
    sql(running.socket_url(), "DROP DATABASE IF EXISTS concurrent", "CREATE DATABASE concurrent")
    url = running.socket_url("concurrent")
    steps = [Step(service, url) for _ in range(3)]
    results = [step.finish() for step in steps]
    for code, lines, _ in results:
        assert code == 0, lines
    assert books(running, "concurrent") == 1
    assert sql(url, "SELECT version_num FROM alembic_version")[0] == [("0002",)]
    outputs = ["\n".join(lines) for _, lines, _ in results]
    assert sum("Running upgrade 0001 -> 0002" in output for output in outputs) == 1, outputs
    assert any("Another migration run holds the lock" in output for output in outputs), outputs
    # Not the 20 s that the revision waits at most for the others to connect.
    assert max(seconds for _, _, seconds in results) < 15.0, results
    print("steps done after " + ", ".join(f"{seconds:.1f} s" for _, _, seconds in results))


@pytest.mark.parametrize(
    ("database", "password", "needle"),
    [
        ("postgres", "wrong-Pw", 'password authentication failed for user "postgres"'),
        ("no_such_db", PASSWORD, 'database "no_such_db" does not exist'),
    ],
    ids=["wrong-password", "missing-database"],
)
def test_what_waiting_cannot_fix_fails_at_once(
    service: Service, running: Cluster, database: str, password: str, needle: str
) -> None:
    step = Step(
        service, running.socket_url(database, password), MIGRATION_WAIT_FOR_DATABASE_SECONDS="30"
    )
    code, lines, seconds = step.finish()
    assert code == 1, lines
    failed = assert_one_failure_line(lines, needle)
    assert len(lines) == 1, lines  # not one retry
    assert "wrong-Pw" not in failed
    assert seconds < 10.0, seconds  # against a 30 s bound
    print(f"failed after {seconds:.1f} s: {failed}")


def test_a_missing_certificate_file_fails_at_once(service: Service) -> None:
    # Named when the settings are read: no connection attempt, no retry.
    url = "postgresql://u:p@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    step = Step(service, url, MIGRATION_WAIT_FOR_DATABASE_SECONDS="30")
    code, lines, seconds = step.finish()
    assert code == 1, lines
    assert len(lines) == 1, lines
    assert "sslrootcert file /nonexistent/ca.pem does not exist" in lines[0], lines
    assert seconds < 10.0, seconds  # against a 30 s bound


def test_a_server_that_never_answers_ends_within_bound_and_connect_timeout(
    service: Service,
) -> None:
    # Accepts TCP connections (the kernel's backlog) but never speaks PostgreSQL.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"postgresql://u:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/db"
        step = Step(
            service,
            url,
            MIGRATION_WAIT_FOR_DATABASE_SECONDS="1.5",
            MIGRATION_WAIT_INTERVAL_SECONDS="0.2",
            DATABASE_CONNECT_TIMEOUT_SECONDS="1",
        )
        code, lines, seconds = step.finish()
    assert code == 1, lines
    failed = assert_one_failure_line(lines, "timed out", "still not reachable after")
    assert len(lines) == 2, lines  # a try timed out at 1 s, a wait, the last try at 1.2 s
    assert 2.2 <= waited(failed) < 1.5 + 1 + 0.5, failed  # bound + one connect timeout
    assert seconds < 15.0, seconds
    print(f"gave up after {seconds:.1f} s: {failed}")


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({}, "DATABASE_URL is not set"),
        (
            {
                "DATABASE_URL": f"postgresql://u:{PASSWORD}@localhost/db",
                "MIGRATION_WAIT_INTERVAL_SECONDS": "0",
            },
            "MIGRATION_WAIT_INTERVAL_SECONDS",
        ),
    ],
    ids=["no-url", "zero-interval"],
)
def test_bad_settings_fail_in_one_line(
    service: Service, settings: dict[str, str], needle: str
) -> None:
    code, lines, _ = Step(service, None, **settings).finish()
    assert code == 1, lines
    assert_one_failure_line(lines, "invalid settings", needle)
    assert len(lines) == 1, lines
