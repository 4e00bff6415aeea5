"""Migrations, wall time: ours against Alembic's stock `alembic init -t async` set-up
(same models, revisions and server, a database each)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from database import sql
from helpers import Service, render

from .common import PYTHON, Context, Row, alternate, run
from .projects import stock_project, with_models


def fresh_database(ctx: Context, name: str) -> str:
    sql(ctx.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return ctx.server.set(database=name).render_as_string(hide_password=False)


def alembic(project: Path, env: dict[str, str], *args: str) -> Callable[[], None]:
    def action() -> None:
        run(PYTHON, "-m", "alembic", *args, cwd=project, env=env)

    return action


def rows(ctx: Context) -> list[Row]:
    sizes, check_models = ([1, 5], 10) if ctx.quick else ([1, 50, 150], 100)
    ours_dir = render(ctx.template, ctx.workdir / "ours")
    result = []
    for count in [*sizes, check_models]:
        with_models(ours_dir, count)
        stock_dir = stock_project(
            ours_dir, ctx.workdir / "stock", fresh_database(ctx, f"bench_stock_{count}")
        )
        ours_env = Service(ours_dir).env(fresh_database(ctx, f"bench_ours_{count}"))
        stock_env = {k: v for k, v in ours_env.items() if k != "DATABASE_URL"}
        if count == check_models:
            for project, env in ((ours_dir, ours_env), (stock_dir, stock_env)):
                alembic(project, env, "upgrade", "head")()
                alembic(project, env, "check")()  # both must be clean before timing
            medians = alternate(
                ctx,
                ours=alembic(ours_dir, ours_env, "check"),
                stock=alembic(stock_dir, stock_env, "check"),
            )
            label, how = f"check, {count} models", "alembic check"
        else:

            def cycle(project: Path, env: dict[str, str]) -> Callable[[], None]:
                up = alembic(project, env, "upgrade", "head")
                down = alembic(project, env, "downgrade", "base")
                return lambda: (up(), down())

            medians = alternate(
                ctx, ours=cycle(ours_dir, ours_env), stock=cycle(stock_dir, stock_env)
            )
            label, how = f"migrate {count} revisions", "upgrade head + downgrade base"
        ratio = medians["ours"] / medians["stock"]
        result.append(
            (
                label,
                how,
                f"{medians['ours']:.2f} s",
                f"stock async {medians['stock']:.2f} s ({ratio:.2f}x)",
            )
        )
    shutil.rmtree(ctx.workdir / "stock", ignore_errors=True)
    return result
