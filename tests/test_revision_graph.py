"""Revision files that make no graph (two releases' branches met in git), through the
real `alembic` command line and the migrate step: each fails in one line that names
the file at fault and what to do, never Alembic's traceback.

Every case is a copy of the default render with its own revision files; all commands
run at once (one fixture), each against an empty database that it must not touch.
`alembic upgrade head` with two heads: test_autogenerate_guards.py.
"""

from __future__ import annotations

import shutil
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from background import Background
from database import fresh_database, table_names
from helpers import Service
from sqlalchemy.engine import URL

MIGRATE = (sys.executable, "-m", "app.infra.migrate")
UPGRADE = (sys.executable, "-m", "alembic", "upgrade", "head")
CHECK = (sys.executable, "-m", "alembic", "check")


def missing_parent(service: Service) -> None:
    service.write_revision("k01", None, "pass")
    service.write_revision("k03", "k02", "pass")  # k02.py was deleted on another branch


def cycle(service: Service) -> None:
    service.write_revision("k01", "k03", "pass")
    service.write_revision("k02", "k01", "pass")
    service.write_revision("k03", "k02", "pass")


def same_id_twice(service: Service) -> None:
    service.write_revision("k01", None, "pass")
    service.write_revision("k02", "k01", "pass")
    copy = service.path / "alembic" / "versions" / "k02_add_isbn.py"
    copy.write_text((service.path / "alembic" / "versions" / "k02.py").read_text())


def fails_to_import(service: Service) -> None:
    service.write_revision("k01", None, "pass")
    broken = service.write_revision("k02", "k01", "pass")
    broken.write_text(broken.read_text().replace("import sqlalchemy", "import no_such_module"))


def two_heads(service: Service) -> None:
    service.write_revision("k01", None, "pass")
    service.write_revision("k02", "k01", "pass")
    service.write_revision("k03", "k01", "pass")


@dataclass(frozen=True)
class Case:
    graph: str
    command: tuple[str, ...]
    needles: tuple[str, ...]


CASES = {
    "missing-parent-cli": Case(
        "missing_parent",
        UPGRADE,
        ("alembic/versions/k03.py (revision k03) has down_revision 'k02'", "restore", "k01"),
    ),
    "missing-parent-migrate-step": Case(
        "missing_parent", MIGRATE, ("alembic/versions/k03.py", "'k02'", "no revision file")
    ),
    "cycle-cli": Case(
        "cycle",
        UPGRADE,
        (
            "cycle: alembic/versions/k01.py (k01) -> alembic/versions/k03.py (k03)"
            " -> alembic/versions/k02.py (k02) -> k01",
        ),
    ),
    "same-id-twice-migrate-step": Case(
        "same_id_twice",
        MIGRATE,
        ("alembic/versions/k02.py and alembic/versions/k02_add_isbn.py", "revision = 'k02'"),
    ),
    "fails-to-import-cli": Case(
        "fails_to_import",
        UPGRADE,
        ("alembic/versions/k02.py fails to import", "No module named 'no_such_module'"),
    ),
    "two-heads-check": Case(
        "two_heads",
        CHECK,  # Alembic alone says "Target database is not up to date."
        ("2 head revisions", "k02 (alembic/versions/k02.py)", "`alembic merge heads"),
    ),
}
GRAPHS = {f.__name__: f for f in (missing_parent, cycle, same_id_twice, fails_to_import, two_heads)}


@pytest.fixture(scope="module")
def outcomes(
    default_render: Path, tmp_path_factory: pytest.TempPathFactory, postgres_server: URL
) -> dict[str, list[str]]:
    """Each case's output lines, each run on a database of its own that it must leave
    empty; every one failed."""
    root = tmp_path_factory.mktemp("graphs")
    services = {}
    for name, make in GRAPHS.items():
        services[name] = Service(Path(shutil.copytree(default_render, root / name)))
        make(services[name])
    with ExitStack() as stack:
        urls = {name: stack.enter_context(fresh_database(postgres_server)) for name in CASES}
        steps = {  # at once: each is mostly an interpreter starting
            name: Background(services[case.graph], case.command, urls[name], bound=60)
            for name, case in CASES.items()
        }
        results = {name: step.finish() for name, step in steps.items()}
        for name, url in urls.items():
            assert table_names(url) == set(), name  # nothing applied, not even alembic_version
    for name, (code, lines, _) in results.items():
        assert code != 0, (name, lines)
    return {name: lines for name, (_, lines, _) in results.items()}


@pytest.mark.xdist_group("revision-graph")  # one worker runs the fixture, once
@pytest.mark.parametrize("name", CASES)
def test_a_broken_revision_graph_fails_in_one_line_naming_the_file(
    outcomes: dict[str, list[str]], name: str
) -> None:
    # Alembic's own progress lines may come first; nothing else, no traceback.
    lines = [line for line in outcomes[name] if not line.startswith("INFO  [alembic.")]
    assert len(lines) == 1, outcomes[name]
    assert lines[0].startswith("FAILED: "), lines
    for needle in CASES[name].needles:
        assert needle in lines[0], lines[0]
