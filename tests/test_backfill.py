"""The backfill runner (infra/backfill/) on real PostgreSQL, through its command line:
a run SIGKILLed mid-way resumes with every row done exactly once, one runner per
backfill, lock timeouts retried rather than waited out, progress lines, bad input in
one line with the state kept, the contract revision that waits for its backfill. The
throttle (batch size, the hold on a real standby's lag) is test_backfill_throttle.py's.

Small tables and short settings: the big numbers are bench/backfill.py's.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from background import Background
from database import applied_versions, fresh_database, locked_by, sql
from helpers import Service, one_line_failure
from sqlalchemy.engine import URL

if TYPE_CHECKING:
    pass

BACKFILLS = """\
import asyncio
import os

from sqlalchemy import text

from app.infra.backfill import Backfill


async def count_in_python(connection, first, last):
    # The test's gate: past row 500, wait inside the batch while the file exists.
    while first > 500 and os.path.exists(os.environ.get("GATE", "/nonexistent")):
        await asyncio.sleep(0.01)
    # The test's broken row: a batch past it fails in the database.
    if last > int(os.environ.get("BREAK_AFTER", last)):
        await connection.execute(text("SELECT 1 / 0"))
    result = await connection.execute(
        text("UPDATE t SET n = coalesce(n, 0) + 1 WHERE id BETWEEN :first AND :last"),
        {"first": first, "last": last},
    )
    return result.rowcount


BACKFILLS = [
    Backfill(
        name="fill",
        table="t",
        batch="UPDATE t SET n = coalesce(n, 0) + 1 WHERE id BETWEEN :first AND :last",
    ),
    Backfill(name="slow", table="t", batch=count_in_python),
    Backfill(
        name="by-v",
        table="t",
        key="v",
        batch="UPDATE t SET n = 1 WHERE v BETWEEN :first AND :last",
    ),
]
"""
# Short everything: batches of a fixed size, a progress line at every batch.
QUICK = {
    "BACKFILL_BATCH_SIZE": "100",
    "BACKFILL_MIN_BATCH_SIZE": "100",
    "BACKFILL_MAX_BATCH_SIZE": "100",
    "BACKFILL_PAUSE_SECONDS": "0.01",
    "BACKFILL_PROGRESS_SECONDS": "0.001",
    "BACKFILL_MAX_LAG_SECONDS": "0",
}
PROGRESS = re.compile(
    r"Backfill (?P<name>[\w-]+): (?P<done>\d+) of about (?P<total>\d+) rows done "
    r"\((?P<percent>[\d.]+) %\), (?P<rate>\d+) rows/s, ETA \S+, batch \d+ rows\."
)
BOUND = 60.0


@pytest.fixture(scope="module")
def backfill_service(default_render: Path, tmp_path_factory: pytest.TempPathFactory) -> Service:
    service = Service(Path(shutil.copytree(default_render, tmp_path_factory.mktemp("bf") / "svc")))
    service.write("app/backfills.py", BACKFILLS)
    return service


@pytest.fixture
def table_url(postgres_server: URL) -> URL:
    with fresh_database(postgres_server) as url:
        yield url


def make_table(url: URL, rows: int) -> None:
    sql(
        url,
        "CREATE TABLE t (id bigint PRIMARY KEY, v integer, n integer)",
        f"INSERT INTO t SELECT i, i % 7, NULL FROM generate_series(1, {rows}) i",
    )


def backfill(service: Service, url: URL, *args: str, **env: str):  # type: ignore[no-untyped-def]
    command = (sys.executable, "-m", "app.infra.backfill", *args)
    return service.run(*command, env=service.env(url, **{**QUICK, **env}), timeout=BOUND)


# Several commands in one interpreter (each `main()` as `python -m` calls it, with its
# own arguments and settings): a second or so saved per command. Log lines go to the
# process's stderr; each command's own stdout and stderr are kept apart.
DRIVER = """
import contextlib, io, json, logging, os, sys
from app.infra.backfill.__main__ import main

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
results = []
for args, env in json.load(sys.stdin):
    saved = dict(os.environ)
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    os.environ.clear()
    os.environ.update(saved)
    results.append([args, code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""
Call = tuple[tuple[str, ...], dict[str, str]]


def commands(
    service: Service, url: URL, *calls: Call
) -> tuple[list[subprocess.CompletedProcess[str]], list[str]]:
    """(each call's result, the log lines of them all)."""
    result = service.run(
        sys.executable,
        "-c",
        DRIVER,
        env=service.env(url, **QUICK),
        input=json.dumps(calls),
        timeout=BOUND,
    )
    assert result.returncode == 0, result.stderr
    return [
        subprocess.CompletedProcess(args, code, out, err)
        for args, code, out, err in json.loads(result.stdout)
    ], result.stderr.splitlines()


def in_background(service: Service, url: URL, *args: str, **env: str) -> Background:
    command = (sys.executable, "-m", "app.infra.backfill", *args)
    return Background(service, command, url, bound=BOUND, **{**QUICK, **env})


def counts(url: URL) -> dict[object, int]:
    """How many rows were done how often: {None: not yet, 1: once, 2: twice...}."""
    return dict(sql(url, "SELECT n, count(*) FROM t GROUP BY n")[0])


def state(url: URL, name: str) -> tuple[str, int, str | None]:
    rows = sql(url, f"SELECT status, rows_done, cursor FROM backfill.state WHERE name = '{name}'")
    return tuple(rows[0][0]) if rows[0] else ("none", 0, None)  # type: ignore[return-value]


def progress(lines: list[str]) -> list[re.Match[str]]:
    return [match for line in lines if (match := PROGRESS.search(line))]


def test_killed_mid_way_resumes_with_every_row_done_once(
    backfill_service: Service, table_url: URL, tmp_path: Path
) -> None:
    """SIGKILL while batches commit; a second runner meanwhile is refused, naming the
    first; the re-run resumes after the last committed batch; progress only grows."""
    make_table(table_url, 3000)
    gate = tmp_path / "gate"
    gate.touch()
    first = in_background(backfill_service, table_url, "run", "slow", GATE=str(gate))
    deadline = time.monotonic() + BOUND
    while not _has_state(table_url) or state(table_url, "slow")[1] < 500:
        assert time.monotonic() < deadline and first.process.poll() is None, first.lines
        time.sleep(0.02)

    # Now inside the batch of 501..600, holding the backfill's lock.
    second = backfill(backfill_service, table_url, "run", "slow")
    one_line_failure(
        second, "backfill slow is already running: pid", "application_name 'backfill slow'"
    )

    first.process.send_signal(signal.SIGKILL)
    code, lines, _ = first.finish()
    assert code == -signal.SIGKILL
    status, done, cursor = state(table_url, "slow")
    # Killed inside a batch: that batch is gone, the five before it are kept.
    assert (status, done, cursor) == ("running", 500, "500")
    assert counts(table_url) == {1: 500, None: 2500}
    (stopped, resumed, finished), log = commands(
        backfill_service, table_url, (("status",), {}), (("run", "slow"), {}), (("status",), {})
    )
    assert "slow: stopped (no runner; `run` resumes it)" in stopped.stdout, stopped
    assert resumed.returncode == 0, resumed
    assert counts(table_url) == {1: 3000}
    assert state(table_url, "slow")[:2] == ("finished", 3000)
    assert any("resuming after 500 by id" in line for line in log), log
    lines = progress(lines + log)
    assert len(lines) >= 20, log
    done_counts = [int(line["done"]) for line in lines]
    percents = [float(line["percent"]) for line in lines]
    assert done_counts == sorted(done_counts) and percents == sorted(percents)
    assert done_counts[-1] == 3000 and percents[-1] == 100.0
    status = finished.stdout
    assert re.search(r"^slow: finished; 3000 of about 3000 rows \(100\.0 %\)", status, re.M)
    assert re.search(r"^fill: not started$", status, re.M)


def _has_state(url: URL) -> bool:
    return bool(sql(url, "SELECT to_regclass('backfill.state') IS NOT NULL")[0][0][0])


def test_bad_input_is_one_line_and_keeps_the_state(
    backfill_service: Service, table_url: URL
) -> None:
    make_table(table_url, 1000)
    (unknown, settings, unindexed, failed, status, fixed), _ = commands(
        backfill_service,
        table_url,
        (("run", "nope"), {}),
        (("run", "slow"), {"BACKFILL_BATCH_SIZE": "0"}),
        (("run", "by-v"), {}),
        (("run", "slow"), {"BREAK_AFTER": "555"}),  # a row the batch cannot do
        (("status",), {}),
        (("run", "slow"), {}),  # fixed
    )
    one_line_failure(
        unknown, "no backfill named 'nope' in app.backfills.BACKFILLS (declared: by-v, fill, slow)"
    )
    one_line_failure(settings, "invalid settings: BACKFILL_BATCH_SIZE")
    one_line_failure(unindexed, "backfill by-v: t.v has no usable index")
    one_line_failure(
        failed, "backfill slow failed in the batch of 501..600: division by zero; nothing of"
    )
    # The batches before it were kept, and the state said so until the fixed run.
    assert "slow: failed; 500 of about 1000 rows" in status.stdout, status
    assert "last error: backfill slow failed in the batch of 501..600" in status.stdout, status
    assert fixed.returncode == 0, fixed
    assert counts(table_url) == {1: 1000}
    assert state(table_url, "slow")[:2] == ("finished", 1000)


def test_a_lock_timeout_is_retried_not_waited_out(
    backfill_service: Service, table_url: URL
) -> None:
    """An app transaction holds a row of the second batch: that batch gives up after
    its 0.1 s lock_timeout, rolls back, pauses, tries again, until the row is free;
    meanwhile the first batch stays done."""
    make_table(table_url, 300)
    with locked_by(table_url, "SELECT FROM t WHERE id = 150 FOR UPDATE"):
        runner = in_background(
            backfill_service, table_url, "run", "fill", BACKFILL_LOCK_TIMEOUT_SECONDS="0.1"
        )
        runner.wait_for("lock timeout in the batch of 101..200", count=2)
        assert state(table_url, "fill")[:2] == ("running", 100)
    code, lines, _ = runner.finish()
    assert code == 0, lines
    retries = [line for line in lines if "lock timeout" in line]
    assert all(
        "rolled back, trying again (try" in line and "BACKFILL_LOCK_TIMEOUT_SECONDS=0.1" in line
        for line in retries
    ), retries
    assert counts(table_url) == {1: 300}


CONTRACT = """
    from app.infra.backfill import require_backfill_finished

    require_backfill_finished("fill")
    op.alter_column("t", "n", nullable=False)
"""


def test_a_contract_revision_waits_for_its_backfill(
    backfill_service: Service, table_url: URL, tmp_path: Path
) -> None:
    """Refused in one line, nothing applied, until the backfill finished; then applied.
    (`--sql` writes the same check into the script.)"""
    make_table(table_url, 500)
    service = Service(Path(shutil.copytree(backfill_service.path, tmp_path / "svc")))
    revision = service.write_revision("r1", None, CONTRACT, phase="post-deploy")
    env = service.env(table_url, **QUICK)
    one_line_failure(
        service.alembic("upgrade", "head", env=env),
        "backfill fill has not finished (never run): run `python -m app.infra.backfill run fill`",
        progress=True,
    )
    assert applied_versions(table_url) == []
    offline = service.ok(service.alembic("upgrade", "head", "--sql", env=env))
    assert "RAISE EXCEPTION 'backfill fill has not finished" in offline
    # The post-deploy step finishes the backfills its revisions name, then applies them.
    revision.write_text(
        revision.read_text().replace("\ndef upgrade", 'backfills = ["fill"]\n\ndef upgrade')
    )
    migrate = (sys.executable, "-m", "app.infra.migrate")
    service.ok(service.run(*migrate, "pre-deploy", env=env))
    assert applied_versions(table_url) == []
    output = service.ok(service.run(*migrate, "post-deploy", env=env))
    assert "Backfill fill: 500 of about 500 rows done" in output, output
    assert applied_versions(table_url) == ["r1"]
    assert counts(table_url) == {1: 500}  # fill, once; none of the backfills r1 does not name
