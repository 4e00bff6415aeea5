"""The template's own test suite, and what its phases cost (full runs only)."""

from __future__ import annotations

import subprocess
import time

from database import sql
from helpers import Service, render

from .common import PYTHON, ROOT, Context, Row, check


def rows(ctx: Context) -> list[Row]:
    from test_options import matrix  # the same combinations the suite renders

    combos = matrix()
    start = time.perf_counter()
    renders = [
        Service(
            render(ctx.template, ctx.workdir / f"combo-{i}", **answers), answers["package_name"]
        )
        for i, answers in enumerate(combos)
    ]
    result = [
        (
            "suite phase: render",
            f"{len(combos)} option combinations",
            f"{time.perf_counter() - start:.2f} s",
            "",
        )
    ]
    start = time.perf_counter()
    for index, service in enumerate(renders):
        database = f"bench_combo_{index}"
        sql(
            ctx.server,
            f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            f'CREATE DATABASE "{database}"',
        )
        url = ctx.server.set(database=database)
        check(service.alembic("upgrade", "head", database_url=url))
        check(service.alembic("check", database_url=url))
    result.append(
        (
            "suite phase: migrate+check",
            f"{len(combos)} combinations, alembic CLI",
            f"{time.perf_counter() - start:.2f} s",
            "",
        )
    )
    start = time.perf_counter()
    suite = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-n", "auto", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    # A failing suite is a row too: the table of the other sections is not lost.
    result.append(
        (
            "test suite, every option" if suite.returncode == 0 else "test suite FAILED",
            "pytest -n auto (slow tests included)",
            f"{time.perf_counter() - start:.1f} s",
            suite.stdout.strip().splitlines()[-1],
        )
    )
    return result
