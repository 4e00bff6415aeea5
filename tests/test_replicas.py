"""Read replicas on PostgreSQL's own streaming replication, on a real primary and
hot standby (the session's `replica_pair`): the service's replica tests run for
both `web` answers, Alembic refuses the standby, and reads survive the standby
being stopped mid-run and come back to it once it is started again.
"""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import Service, one_line_failure, render

if TYPE_CHECKING:
    from conftest import ReplicaPair

pytestmark = pytest.mark.xdist_group("replica")

# A long-lived process of the service reading through db/reads.py, driven over stdin:
# "read N" does N reads, "read-for S" reads for S seconds, "until-standby S" reads
# until one lands on the standby (at most S seconds).
READER = """\
import asyncio
import json
import logging
import sys
import time

from sqlalchemy import text

from {package}.core.config import Settings
from {package}.infra.engines import create_app_engine
from {package}.infra.read_sessions import ReadSessions, ReplicaUnavailable

logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


async def read(reads):
    start = time.monotonic()
    try:
        async with reads.session() as session:
            standby = await session.scalar(text("SELECT pg_is_in_recovery()"))
            where = "standby" if standby else "primary"
    except ReplicaUnavailable:
        where = "refused"
    return where, time.monotonic() - start


async def main():
    settings = Settings()
    reads = ReadSessions(create_app_engine(settings), settings)
    # Commands are read off the event loop, which runs on between them as a service's
    # does: asyncpg sees a connection the standby closed as soon as it closes.
    while line := await asyncio.to_thread(sys.stdin.readline):
        command, argument = line.split()
        if command == "read":
            answer = [await read(reads) for _ in range(int(argument))]
        elif command == "read-for":
            start, answer = time.monotonic(), []
            while time.monotonic() - start < float(argument):
                answer.append(await read(reads))
                await asyncio.sleep(0.02)
        else:
            start, where = time.monotonic(), None
            while where != "standby" and time.monotonic() - start < float(argument):
                where, _ = await read(reads)
                await asyncio.sleep(0.02)
            answer = [where, time.monotonic() - start]
        print(json.dumps(answer), flush=True)
    await reads.dispose()
    await reads.primary.dispose()


asyncio.run(main())
"""


@pytest.mark.parametrize("web", ["none", "fastapi"])
def test_service_suite_runs_its_replica_tests_on_the_pair(
    web: str, copier_template: Path, tmp_path: Path, replica_pair: ReplicaPair
) -> None:
    service = Service(render(copier_template, tmp_path / "svc", web=web))
    env = service.env(
        TEST_DATABASE_URL=replica_pair.primary.url().render_as_string(hide_password=False),
        TEST_DATABASE_READ_URL=replica_pair.standby.url().render_as_string(hide_password=False),
    )
    output = service.ok(service.pytest("-rA", env=env))  # -rA: a line for every outcome
    replica_tests = re.findall(r"^(\w+) tests/infra/test_replicas\.py::", output, re.MULTILINE)
    # Without the standby, 3 of these (with FastAPI) or 2 are skipped.
    assert replica_tests == ["PASSED"] * (8 if web == "fastapi" else 6), output
    assert re.search(rf"\b{43 if web == 'fastapi' else 23} passed in\b", output), output
    assert not re.search(r"\d+ skipped", output), output


def test_alembic_refuses_to_migrate_the_standby(
    service: Service, replica_pair: ReplicaPair
) -> None:
    result = service.alembic("upgrade", "head", database_url=replica_pair.standby.url())
    one_line_failure(result, "read-only standby (pg_is_in_recovery() is true)", "primary")


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({}, "DATABASE_READ_URL uses unsupported scheme 'mysql'"),
        ({"DATABASE_POOLER": "transaction"}, "DATABASE_READ_URL sets statement_timeout"),
    ],
    ids=["scheme", "pooler"],
)
def test_a_bad_read_url_is_refused_in_one_line(
    service: Service, settings: dict[str, str], needle: str
) -> None:
    read_url = "postgresql://u:s3cret-pw@h/db?options=-c%20statement_timeout%3D5s"
    if not settings:
        read_url = read_url.replace("postgresql", "mysql")
    env = service.env("postgresql://u@127.0.0.1:1/db", DATABASE_READ_URL=read_url, **settings)
    one_line_failure(service.alembic("upgrade", "head", env=env), needle, secrets=("s3cret-pw",))


class Reader:
    """The READER program, running in `service` with these settings."""

    def __init__(self, service: Service, pair: ReplicaPair, **settings: str) -> None:
        service.write("reader.py", READER.format(package=service.package))
        self.process = subprocess.Popen(
            [sys.executable, "reader.py"],
            cwd=service.path,
            env=service.env(
                pair.primary.url(),
                DATABASE_READ_URL=pair.standby.url().render_as_string(hide_password=False),
                **settings,
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: str | None = None

    def ask(self, command: str) -> Any:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answered, _, _ = select.select([self.process.stdout], [], [], 60)
        assert answered, f"no answer to {command!r} in 60 s"
        line = self.process.stdout.readline()
        assert line, self.finish()
        return json.loads(line)

    def finish(self) -> str:
        """Ends the program (by its PID, if it hangs); returns what it logged."""
        if self.log is None:
            try:
                self.log = self.process.communicate(timeout=30)[1]
            finally:
                self.process.kill()  # a no-op once it has ended
        return self.log


@pytest.mark.parametrize("strict", [False, True], ids=["fallback", "strict"])
def test_standby_stopped_mid_run_reads_fail_over_then_come_back(
    service: Service, replica_pair: ReplicaPair, strict: bool
) -> None:
    reader = Reader(
        service,
        replica_pair,
        DATABASE_READ_STRICT=str(strict).lower(),
        DATABASE_READ_RETRY_SECONDS="0.5",
    )
    try:
        assert {where for where, _ in reader.ask("read 3")} == {"standby"}
        replica_pair.standby.stop("immediate")  # as in a crash
        reads = reader.ask("read 20")
        still_down = reader.ask("read-for 1.2")  # two more tries of the standby fail
        replica_pair.standby.start()
        where, back_after = reader.ask("until-standby 20")
    finally:
        if replica_pair.standby.pid is None:
            replica_pair.standby.start()  # later tests share the pair
        log = reader.finish()

    (first, failover_seconds), *rest = reads
    expected = "refused" if strict else "primary"
    assert first == expected and {where for where, _ in rest + still_down} == {expected}, reads
    assert failover_seconds < 1.0, reads  # refused at once: no connect timeout to wait out
    assert max(seconds for _, seconds in rest) < 0.1, reads  # the standby is not retried
    assert where == "standby" and back_after < 20, (where, back_after)
    print(
        f"failover ({expected}): first read {failover_seconds * 1000:.1f} ms; "
        f"back on the standby {back_after:.2f} s after its restart"
    )
    lines = log.splitlines()
    assert len(lines) == 2, log  # one line when it went, one when it came back
    assert lines[0].startswith(
        "WARNING app.infra.read_sessions: read replica unusable: cannot connect"
    ), log
    then = "reads fail (DATABASE_READ_STRICT)" if strict else "reads go to the primary"
    assert f"; {then}, trying it again every 0.5 s" in lines[0], log
    assert re.fullmatch(
        r"WARNING app\.infra\.read_sessions: read replica back after \d+\.\d s; reads go to it again",
        lines[1],
    ), log
