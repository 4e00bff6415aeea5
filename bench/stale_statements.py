"""What the service pays to survive a deploy's migrations on warm connections (issue 25):

- the retry of a stale first statement (app/infra/stale_statements.py): the `do_execute`
  events it adds to every statement, as client CPU per one-query request (a session, a
  SELECT by key), beside the same engine without them;
- DATABASE_POOLER=transaction turns SQLAlchemy's statement cache off (a cached unnamed
  statement kept its old result columns and read wrong values after a type change):
  wall time per one-query request beside the cache on, as v0.4.0 had it.

In one process, on one pooled connection to the run's server (Unix socket), the
variants in turn within each round; medians of the rounds.
"""

from __future__ import annotations

import json
import statistics

from database import sql
from helpers import Service, render

from .common import PYTHON, Context, Row, check

DATABASE = "bench_stale"
PROGRAM = """\
import asyncio
import json
import sys
import time
from dataclasses import replace

from sqlalchemy import event, text

from app.core.config import get_settings
from app.infra import stale_statements
from app.infra.engines import create_sessionmaker, engine_for

REQUESTS, ROUNDS = int(sys.argv[1]), int(sys.argv[2])
QUERY = text("SELECT id, name FROM bench_stale WHERE id = :id")


async def requests(sessions, count):
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        async with sessions() as session:
            (await session.execute(QUERY, {"id": n % 100 + 1})).one()
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


async def main():
    database = get_settings().DATABASE_URL
    without = engine_for(database, pool_size=1)
    event.remove(without.sync_engine, "do_execute", stale_statements._execute)
    event.remove(without.sync_engine, "do_execute_no_params", stale_statements._execute_no_params)
    pooler = database.using(pooler="transaction", connect_timeout=10)
    cached = replace(pooler, connect_args={**pooler.connect_args, "prepared_statement_cache_size": 100})
    engines = {
        "retry": engine_for(database, pool_size=1),
        "no retry": without,
        "pooler": engine_for(pooler, pool_size=1),
        "pooler, cache on": engine_for(cached, pool_size=1),
    }
    sessions = {name: create_sessionmaker(engine) for name, engine in engines.items()}
    samples = {name: [] for name in engines}
    for name in engines:  # connect, prepare
        await requests(sessions[name], 20)
    for round_ in range(ROUNDS):
        order = list(engines) if round_ % 2 else list(engines)[::-1]
        for name in order:
            samples[name].append(await requests(sessions[name], REQUESTS))
    for engine in engines.values():
        await engine.dispose()
    print(json.dumps(samples))


asyncio.run(main())
"""


def rows(ctx: Context) -> list[Row]:
    count, rounds = (50, 1) if ctx.quick else (1000, 2 * ctx.repeat + 1)
    sql(
        ctx.server,
        f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)',
        f'CREATE DATABASE "{DATABASE}"',
    )
    url = ctx.server.set(database=DATABASE)
    sql(
        url,
        "CREATE TABLE bench_stale (id bigint PRIMARY KEY, name text NOT NULL)",
        "INSERT INTO bench_stale SELECT n, 'row ' || n FROM generate_series(1, 100) n",
    )
    service = Service(render(ctx.template, ctx.workdir / "stale-service"))
    service.write("bench_stale.py", PROGRAM)
    program = (PYTHON, "bench_stale.py", str(count), str(rounds))
    output = check(service.run(*program, database_url=url, timeout=900))
    samples = json.loads(output.stdout)

    def median_us(name: str, which: int) -> float:
        return statistics.median(sample[which] for sample in samples[name]) * 1e6

    retry, bare = median_us("retry", 1), median_us("no retry", 1)
    uncached, cached = median_us("pooler", 0), median_us("pooler, cache on", 0)
    return [
        (
            "stale-statement retry",
            "client CPU per one-query request",
            f"{retry:.0f} us",
            f"without its events {bare:.0f} us ({retry / bare:.2f}x)",
        ),
        (
            "pooler mode, statement cache off",
            "wall per one-query request",
            f"{uncached:.0f} us",
            f"cache on (v0.4.0) {cached:.0f} us ({uncached / cached:.2f}x)",
        ),
    ]
