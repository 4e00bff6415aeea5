"""The backfill runner (infra/backfill/) on a big table that an app is using.

One primary with a streaming standby attached (the embedded server's binaries,
tests/servers.py), a table of 1 M rows (--quick: 10 k). An app load (8 clients,
each a read or an update of a random row of that table every 5 ms, lock_timeout
1 s) runs three times: alone, during the backfill (default settings), alone again;
its p50/p99 during against alone (both alone runs pooled), side by side. Meanwhile
pg_stat_activity (the runner's transaction age) and pg_stat_replication (replay lag)
are sampled every 20 ms. Then a second table is backfilled, SIGKILLed at about 40 %,
and run again: every row must be done exactly once.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import signal
import statistics
import time
from pathlib import Path

import asyncpg
from helpers import Service, render
from servers import primary_and_standby

from .common import PYTHON, Context, Row

BACKFILLS = """\
from app.infra.backfill import Backfill

BACKFILLS = [
    Backfill(
        name=name,
        table=name,
        batch=f"UPDATE {name} SET b = a * 2, n = coalesce(n, 0) + 1"
        " WHERE id BETWEEN :first AND :last AND n IS NULL",
    )
    for name in ("big", "killed")
]
"""
CLIENTS = 8
THINK_SECONDS = 0.005
APP_LOCK_TIMEOUT = "1s"
SAMPLE_SECONDS = 0.02
LAG = "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_stat_replication"
TRANSACTION_AGE = (
    "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)::float8"
    " FROM pg_stat_activity WHERE application_name = 'backfill big' AND xact_start IS NOT NULL"
)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = Path("/proc/meminfo").read_text().split()[1]
        ram = f"{int(memory) / 2**20:.0f} GiB"
    except OSError:
        ram = "? GiB"
    return f"{model}, {len(os.sched_getaffinity(0))} cores, {ram}, {platform.system()}"


class Load:
    """The app: reads and writes of random rows; latencies and lock timeouts counted."""

    def __init__(self, dsn: str, table: str, rows: int) -> None:
        self.dsn, self.table, self.rows = dsn, table, rows
        self.latencies: list[float] = []
        self.lock_timeouts = 0
        self.stop = asyncio.Event()

    async def client(self) -> None:
        connection = await asyncpg.connect(
            self.dsn, server_settings={"lock_timeout": APP_LOCK_TIMEOUT}
        )
        read = f"SELECT a, b FROM {self.table} WHERE id = $1"
        write = f"UPDATE {self.table} SET a = a + 1 WHERE id = $1"
        try:
            while not self.stop.is_set():
                key = random.randint(1, self.rows)
                start = time.perf_counter()
                try:
                    if random.random() < 0.5:
                        await connection.fetchrow(read, key)
                    else:
                        await connection.execute(write, key)
                except asyncpg.LockNotAvailableError:
                    self.lock_timeouts += 1
                self.latencies.append(time.perf_counter() - start)
                await asyncio.sleep(THINK_SECONDS)
        finally:
            await connection.close()

    async def run(self, until: asyncio.Future[object] | float) -> None:
        clients = [asyncio.create_task(self.client()) for _ in range(CLIENTS)]
        if isinstance(until, float):
            await asyncio.sleep(until)
        else:
            await until
        self.stop.set()
        await asyncio.gather(*clients)


async def sample(dsn: str, query: str, stop: asyncio.Event) -> float:
    """The largest value `query` gave, sampled every SAMPLE_SECONDS until `stop`."""
    connection = await asyncpg.connect(dsn)
    largest = 0.0
    try:
        while not stop.is_set():
            largest = max(largest, float(await connection.fetchval(query)))
            await asyncio.sleep(SAMPLE_SECONDS)
    finally:
        await connection.close()
    return largest


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(service: Service, env: dict[str, str], dsn: str, rows: int, alone: float) -> dict:
    before = Load(dsn, "big", rows)
    await before.run(alone)
    during = Load(dsn, "big", rows)
    stop = asyncio.Event()
    samplers = [asyncio.create_task(sample(dsn, q, stop)) for q in (TRANSACTION_AGE, LAG)]
    started = time.perf_counter()
    runner = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "app.infra.backfill", "run", "big", cwd=service.path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    finished = asyncio.ensure_future(runner.communicate())
    await during.run(finished)
    seconds = time.perf_counter() - started
    stop.set()
    longest, lag = await asyncio.gather(*samplers)
    _, stderr = finished.result()
    if runner.returncode != 0:
        raise SystemExit(f"backfill failed:\n{stderr.decode()[-2000:]}")
    after = Load(dsn, "big", rows)
    await after.run(alone)
    return {
        "seconds": seconds,
        "alone": before.latencies + after.latencies,
        "during": during.latencies,
        "lock_timeouts": before.lock_timeouts + during.lock_timeouts + after.lock_timeouts,
        "longest": longest,
        "lag": lag,
        "log": stderr.decode(),
    }


async def kill_and_resume(service: Service, env: dict[str, str], dsn: str, rows: int) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        runner = await asyncio.create_subprocess_exec(
            PYTHON, "-m", "app.infra.backfill", "run", "killed", cwd=service.path, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        done = 0
        while done < rows * 0.4 and runner.returncode is None:
            await asyncio.sleep(0.05)
            done = (
                await connection.fetchval(
                    "SELECT coalesce((SELECT rows_done FROM backfill.state WHERE name = 'killed'), 0)"
                    " WHERE to_regclass('backfill.state') IS NOT NULL"
                )
                or 0
            )
        runner.send_signal(signal.SIGKILL)
        await runner.wait()
        killed_at = await connection.fetchval("SELECT count(n) FROM killed")
        again = await asyncio.create_subprocess_exec(
            PYTHON, "-m", "app.infra.backfill", "run", "killed", cwd=service.path, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        if await again.wait() != 0:
            raise SystemExit("the resumed backfill failed")
        total, once, twice, missing = await connection.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n > 1),"
            " count(*) FILTER (WHERE n IS NULL) FROM killed"
        )
    finally:
        await connection.close()
    verdict = "exact" if (total, once, twice, missing) == (rows, rows, 0, 0) else "WRONG"
    return (
        f"{verdict}|killed at {killed_at}/{rows}; after: {once} once, {twice} twice, "
        f"{missing} missing"
    )


def rows(ctx: Context) -> list[Row]:
    size = 10_000 if ctx.quick else 1_000_000
    alone = 0.5 if ctx.quick else 10.0
    with primary_and_standby("bench-backfill-") as (primary, _standby):
        for table, count in (("big", size), ("killed", size // 5)):
            primary.psql(
                f"CREATE TABLE {table} (id bigint PRIMARY KEY, a integer NOT NULL,"
                " b integer, n integer)"
            )
            primary.psql(
                f"INSERT INTO {table} SELECT i, i % 1000 FROM generate_series(1, {count}) i"
            )
            primary.psql(f"VACUUM ANALYZE {table}")
        service = Service(render(ctx.template, ctx.workdir / "backfill-service"))
        service.write("app/backfills.py", BACKFILLS)
        env = service.env(primary.url())
        dsn = f"postgresql://postgres@127.0.0.1:{primary.port}/postgres"
        measured = asyncio.run(measure(service, env, dsn, size, alone))
        resumed = asyncio.run(kill_and_resume(service, env, dsn, size // 5))
        batches, final_size = primary.psql(
            "SELECT batches, batch_size FROM backfill.state WHERE name = 'big'"
        ).split("|")
        wrong = primary.psql("SELECT count(*) FROM big WHERE n IS DISTINCT FROM 1")
    p50 = [percentile(measured[k], 0.5) * 1000 for k in ("during", "alone")]
    p99 = [percentile(measured[k], 0.99) * 1000 for k in ("during", "alone")]
    verdict, detail = resumed.split("|")
    return [
        (
            "backfill rows/s",
            f"{size:,} rows under the app load, defaults, one run",
            f"{size / measured['seconds']:,.0f}",
            f"{measured['seconds']:.1f} s, {batches} batches, last size {final_size}, {wrong} rows not done exactly once",
        ),
        (
            "backfill app p50",
            f"{CLIENTS} clients read/update the same table",
            f"{p50[0]:.2f} ms",
            f"alone {p50[1]:.2f} ms ({p50[0] / p50[1]:.2f}x)",
        ),
        (
            "backfill app p99",
            f"{len(measured['during'])} statements during, {len(measured['alone'])} alone",
            f"{p99[0]:.2f} ms",
            f"alone {p99[1]:.2f} ms ({p99[0] / p99[1]:.2f}x)",
        ),
        (
            "backfill longest transaction",
            f"pg_stat_activity every {SAMPLE_SECONDS * 1000:.0f} ms",
            f"{measured['longest'] * 1000:.0f} ms",
            "target batch 200 ms",
        ),
        (
            "backfill app lock timeouts",
            f"app statements past lock_timeout={APP_LOCK_TIMEOUT}",
            str(measured["lock_timeouts"]),
            "",
        ),
        (
            "backfill max replay lag",
            "streaming standby, pg_stat_replication",
            f"{measured['lag']:.2f} s",
            "hold above BACKFILL_MAX_LAG_SECONDS=10",
        ),
        ("backfill kill + resume", "SIGKILL at about 40 %, run again", verdict, detail),
        ("backfill machine", machine(), f"{statistics.mean(os.getloadavg()):.2f}", "load avg"),
    ]
