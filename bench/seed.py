"""Migrations by instruction count: ours against the seed-design reference.

The reference is what a careful developer writes from Alembic's docs: the stock
`alembic init -t async` env.py, the URL from a cached pydantic-settings
`get_settings()`, `target_metadata = Base.metadata`, `compare_type=True`. Same 20
models and revisions, each project on its own database at head. Counted with
`valgrind --tool=callgrind`: wall time moves by +-5% between runs on a shared VM,
instruction counts by well under 1%. Both run with .pyc files (written by a warm-up
run): without them our larger sources are recompiled every run.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from helpers import Service, render

from .common import PYTHON, Context, Row, run
from .migrations import fresh_database
from .projects import seed_project, with_models

MODELS = 20
COMMANDS = ("check", "upgrade head")  # targets: bench/run.py


def instructions(project: Path, env: dict[str, str], *args: str) -> int:
    callgrind_out = project.parent / f"callgrind.{project.name}.out"
    result = run(
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={callgrind_out}",
        PYTHON,
        "-m",
        "alembic",
        *args,
        cwd=project,
        env=env,
        timeout=1800,
    )
    callgrind_out.unlink()
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))


def rows(ctx: Context) -> list[Row]:
    labels = [f"{command} vs seed design" for command in COMMANDS]
    why = "--quick skips callgrind (minutes)" if ctx.quick else ""
    if not why and shutil.which("valgrind") is None:
        why = "valgrind is not installed (apt-get install valgrind)"
    if why:
        return [(label, "callgrind instructions", "skipped", why) for label in labels]
    ours_dir = render(ctx.template, ctx.workdir / "seed-ours")
    with_models(ours_dir, MODELS)
    seed_dir = seed_project(ours_dir, ctx.workdir / "seed")
    projects = {}
    for name, project in (("ours", ours_dir), ("seed", seed_dir)):
        env = Service(ours_dir).env(fresh_database(ctx, f"bench_seed_{name}"))
        run(PYTHON, "-m", "alembic", "upgrade", "head", cwd=project, env=env)
        run(PYTHON, "-m", "alembic", "check", cwd=project, env=env)  # clean, and .pyc written
        projects[name] = (project, env)
    result = []
    for command, label in zip(COMMANDS, labels, strict=True):
        counts = {
            name: instructions(project, env, *command.split())
            for name, (project, env) in projects.items()
        }
        ratio = counts["ours"] / counts["seed"]
        result.append(
            (
                label,
                f"alembic {command}, {MODELS} models, at head; callgrind",
                f"{counts['ours'] / 1e6:,.0f} M instr",
                f"seed {counts['seed'] / 1e6:,.0f} M instr ({ratio:.3f}x)",
            )
        )
    return result
