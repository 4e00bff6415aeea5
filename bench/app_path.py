"""The request path: the rendered service's `GET /items/{id}` beside raw asyncpg and
plain SQLAlchemy, each served by one uvicorn worker on 127.0.0.1, same server, same
10,000-row table (issue 20).

- Throughput: wrk at 16 and 64 connections, every app in turn within a round,
  medians of the rounds; requests/s, p50 and p99. On uvicorn as most templates ship
  it (asyncio + h11) and with uvicorn[standard]'s uvloop + httptools, and the service
  on its image's own command ("as shipped").
- Statements per request: counted on the wire (bench/wire_proxy.py), on a warm
  connection, with the SQL of one request in the row.
- Network delay: sequential p50 (c1) through the same proxy, without and with an
  added one-way delay (a managed database in the same region).

Throughput runs on direct Unix-socket connections (a Python proxy would be the
bottleneck); the proxy rows run on a second set of the apps, each variant through a
proxy of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable

import asyncpg
from database import sql
from helpers import Service, render
from sqlalchemy.engine import URL

from .app_servers import PLAIN_STACK, STANDARD_STACK, Apps, Stack, stack_name
from .app_variants import ROWS, SEED, prepare_service, shipped_command, write_peer_apps
from .common import Context, Row, check, rounds
from .http_load import Load, lua_script, median_ms, sequential, wrk, wrk_missing
from .wire_proxy import WireProxy, unix_socket

DATABASE = "bench_app"
# variant: (app, path of the route, ids appended)
VARIANTS = {
    "raw asyncpg": ("raw", "/bench/items/"),
    "plain SQLAlchemy": ("plain", "/bench/items/"),
    "SessionDep": ("service", "/bench/items/"),
    "ReadSessionDep": ("service", "/bench/read/items/"),
}
CONCURRENCY = (16, 64)
ONE_WAY_DELAY = 0.0005  # seconds each way: about a 1 ms round trip
PLAIN = "plain SQLAlchemy"


def rows(ctx: Context) -> list[Row]:
    seconds, count = (1, 40) if ctx.quick else (10, 300)
    stacks = [PLAIN_STACK] if ctx.quick else [PLAIN_STACK, STANDARD_STACK]
    why_not = wrk_missing()  # None, a reason to skip the load rows, or (under CI) a failure
    sql(
        ctx.server,
        f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)',
        f'CREATE DATABASE "{DATABASE}"',
    )
    direct = ctx.server.set(database=DATABASE)
    service = Service(render(ctx.template, ctx.workdir / "app-service", web="fastapi"))
    prepare_service(service)
    check(service.alembic("upgrade", "head", database_url=direct))
    sql(direct, *SEED)
    shipped, shipped_stack = shipped_command(service)
    if shipped_stack not in stacks and not ctx.quick:  # --quick: one stack is enough to run
        stacks.append(shipped_stack)
    peers = write_peer_apps(ctx.workdir / "app-peers")
    host = str(direct.query["host"])
    upstream = unix_socket(host, direct.port) or (host, direct.port or 5432)

    def start(apps: Apps, app: str, stack: Stack, url: URL, tag: str) -> int:
        name = f"{app}-{stack_name(stack)}-{tag}"
        if app == "service":
            return apps.start(name, shipped, stack, service.path, service.env(url)).port
        env = service.env(
            BENCH_DSN=url.set(drivername="postgresql").render_as_string(hide_password=False),
            BENCH_DATABASE_URL=url.render_as_string(hide_password=False),
        )
        module = "raw_asyncpg_app" if app == "raw" else "plain_sqlalchemy_app"
        return apps.start(name, [f"{module}:app"], stack, peers, env).port

    with contextlib.ExitStack() as running:
        # A proxy per variant, so each count is that variant's alone. Entered last, the
        # apps stop first (disposing their pools) before the proxies close.
        proxies = {variant: running.enter_context(WireProxy(upstream)) for variant in VARIANTS}
        apps = running.enter_context(Apps(ctx.workdir / "app-logs"))
        ports: dict[tuple[str, Stack], int] = {}
        for stack in stacks:
            for app in ("raw", "plain", "service"):
                ports[app, stack] = start(apps, app, stack, direct, "direct")
        proxied = {}
        for number, (variant, (app, _)) in enumerate(VARIANTS.items()):
            via_proxy = URL.create(
                "postgresql+asyncpg",
                direct.username,
                direct.password,
                "127.0.0.1",
                proxies[variant].port,
                DATABASE,
            )
            proxied[variant] = start(apps, app, PLAIN_STACK, via_proxy, f"proxy{number}")
        apps.wait_ready("/bench/items/1")
        for variant, (app, path) in VARIANTS.items():  # statements prepared, pools warm
            for port in [proxied[variant], *(ports[app, stack] for stack in stacks)]:
                sequential(port, path, 30, ROWS)
        result = wire_rows(proxies, proxied, count, ctx.repeat, direct.username or "postgres")
        if why_not:
            return result + [
                (f"app {variant}, c{c}", "wrk", "skipped", why_not)
                for c in CONCURRENCY
                for variant in [*VARIANTS, "as shipped"]
            ]
        return result + load_rows(ctx, ports, stacks, shipped_stack, seconds)


def wire_rows(
    proxies: dict[str, WireProxy], ports: dict[str, int], count: int, repeat: int, user: str
) -> list[Row]:
    """Statements per request and sequential p50 without and with the delay.

    A session's ROLLBACK may reach the server after its response (FastAPI ends a
    dependency's `yield` late), so a request's statements are not all in by the time
    the next starts: statements per request is each proxy's count over a probe once
    it is quiet, divided by the requests; one request's SQL is taken afterwards,
    waiting until that many statements have come. Each probe and that request start
    after a few requests more, uncounted: a connection idle since the variant's last
    probe may be pinged first (the service's DATABASE_POOL_PRE_PING_IDLE_SECONDS),
    and the targets are about warm connections.
    """
    round_trip = added_round_trip(proxies[PLAIN], user)
    counted = dict.fromkeys(VARIANTS, 0)

    def warm(variant: str) -> int:
        # A few: the pool hands out its least recently used connection, and a request
        # may start before the one before it has given its connection back.
        sequential(ports[variant], VARIANTS[variant][1], 4, ROWS, seed=1)
        return proxies[variant].mark()

    def probe(variant: str, delay: float) -> Callable[[], float]:
        path = VARIANTS[variant][1]

        def action() -> float:
            start = warm(variant)
            proxies[variant].delay = delay
            try:
                return median_ms(sequential(ports[variant], path, count, ROWS))
            finally:
                proxies[variant].delay = 0.0
                counted[variant] += proxies[variant].since(start, quiet=0.2)[0]

        return action

    delays = (0.0, ONE_WAY_DELAY)
    samples = rounds(repeat, **{f"{v}|{d}": probe(v, d) for v in VARIANTS for d in delays})
    statements = {v: counted[v] / (len(delays) * repeat * count) for v in VARIANTS}
    sequences = {}
    for variant, (_, path) in VARIANTS.items():
        mark = warm(variant)
        sequential(ports[variant], path, 1, ROWS)
        sequences[variant] = proxies[variant].since(mark, at_least=round(statements[variant]))[1]
    errors = sum(proxy.parse_errors for proxy in proxies.values())
    if errors:
        raise SystemExit(f"the wire proxy could not parse {errors} client(s)")
    p50 = {key: statistics.median(values) for key, values in samples.items()}
    result = []
    for variant in VARIANTS:
        reference = "" if variant == PLAIN else f"{PLAIN} {number(statements[PLAIN])}"
        result.append(
            (
                f"app statements: {variant}",
                "wire: " + ", ".join(map(short, sequences[variant])),
                number(statements[variant]),
                reference,
            )
        )
    added = {v: p50[f"{v}|{ONE_WAY_DELAY}"] - p50[f"{v}|0.0"] for v in VARIANTS}
    for variant in VARIANTS:
        reference = f"+{ONE_WAY_DELAY * 2000:g} ms RTT: {p50[f'{variant}|{ONE_WAY_DELAY}']:.2f} ms (+{added[variant]:.2f})"
        if variant != PLAIN:
            reference += f"; {PLAIN} +{added[PLAIN]:.2f}"
        result.append(
            (
                f"app p50 c1: {variant}",
                f"{count} in a row via the proxy; delay +{round_trip:.2f} ms/RTT measured",
                f"{p50[f'{variant}|0.0']:.2f} ms",
                reference,
            )
        )
    return result


def load_rows(
    ctx: Context,
    ports: dict[tuple[str, Stack], int],
    stacks: list[Stack],
    shipped_stack: Stack,
    seconds: int,
) -> list[Row]:
    script = lua_script(ctx.workdir, ROWS)

    def load(variant: str, stack: Stack, connections: int, duration: int) -> Callable[[], Load]:
        app, path = VARIANTS[variant]
        url = f"http://127.0.0.1:{ports[app, stack]}{path}"
        return lambda: wrk(url, connections, duration, script)

    keys = [(v, s, c) for s in stacks for c in CONCURRENCY for v in VARIANTS]
    if not ctx.quick:  # pools grown to their size, statements prepared on each connection
        for variant, stack in {(v, s) for v, s, _ in keys}:
            load(variant, stack, max(CONCURRENCY), 2)()
    samples = rounds(ctx.repeat, **{"|".join(map(str, k)): load(*k, seconds) for k in keys})
    medians = {
        key: Load(
            *(statistics.median(getattr(s, f) for s in values) for f in Load.__dataclass_fields__)
        )
        for key, values in samples.items()
    }

    def at(variant: str, stack: Stack, connections: int) -> Load:
        return medians[f"{variant}|{stack}|{connections}"]

    result = []
    for stack in stacks:
        for c in CONCURRENCY:
            raw, plain = at("raw asyncpg", stack, c), at(PLAIN, stack, c)
            for variant in VARIANTS:
                measured = at(variant, stack, c)
                reference = []
                if variant != "raw asyncpg":
                    reference.append(f"raw {ratio(measured, raw)}")
                if variant not in ("raw asyncpg", PLAIN):
                    reference.append(f"plain {ratio(measured, plain)}")
                result.append(load_row(f"app {variant}, c{c}", stack, seconds, measured, reference))
    for c in CONCURRENCY:
        if shipped_stack not in stacks:
            why = f"--quick measures {stack_name(PLAIN_STACK)} only"
            result.append((f"app as shipped, c{c}", stack_name(shipped_stack), "skipped", why))
            continue
        measured, plain = at("SessionDep", shipped_stack, c), at(PLAIN, PLAIN_STACK, c)
        reference = [f"plain on {stack_name(PLAIN_STACK)} {ratio(measured, plain)}"]
        result.append(
            load_row(f"app as shipped, c{c}", shipped_stack, seconds, measured, reference)
        )
    return result


def load_row(label: str, stack: Stack, seconds: int, load: Load, reference: list[str]) -> Row:
    errors = f", {load.socket_errors:g} socket errors" if load.socket_errors else ""
    return (
        label,
        f"{stack_name(stack)}, wrk {seconds} s; p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms{errors}",
        f"{load.requests_per_second:.0f} req/s",
        "; ".join(reference),
    )


def ratio(measured: Load, reference: Load) -> str:
    return f"{reference.requests_per_second:.0f} ({measured.requests_per_second / reference.requests_per_second:.2f}x)"


def number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def short(statement: str) -> str:
    """One Query or Execute as the rows show it: `BEGIN`, `SELECT`, `;` (a ping)."""
    text = " ".join(statement.split())
    if text.upper().startswith("SELECT") and " FROM " in text.upper():
        return "SELECT"
    parts = [part.strip() for part in text.split(";") if part.strip()]
    if not parts:
        return ";"
    more = f" (+{len(parts) - 1})" if len(parts) > 1 else ""
    return parts[0][:32] + more


def added_round_trip(proxy: WireProxy, user: str, count: int = 100) -> float:
    """Milliseconds one round trip gains with the proxy's delay on (SELECT 1, asyncpg)."""

    async def measure() -> float:
        connection = await asyncpg.connect(
            host="127.0.0.1", port=proxy.port, user=user, database=DATABASE
        )
        medians = []
        try:
            for delay in (0.0, ONE_WAY_DELAY):
                proxy.delay = delay
                times = []
                for _ in range(count):
                    start = time.perf_counter()
                    await connection.fetchval("SELECT 1")
                    times.append(time.perf_counter() - start)
                medians.append(statistics.median(times) * 1000)
        finally:
            proxy.delay = 0.0
            await connection.close()
        return medians[1] - medians[0]

    return asyncio.run(measure())
