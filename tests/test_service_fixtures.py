"""The service's `db_session` and `client` fixtures isolate tests from each other.

Proven from the outside: test files written into a rendered service (with the
book model and its migration), its own suite run on this session's server.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from database import sql
from helpers import Service, render
from sqlalchemy.engine import URL

COUNT_BOOKS = """\
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.book import Book


async def count_books(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Book)) or 0
"""

SESSION_TESTS = """\
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from app.infra.database_url import DatabaseUrl
from app.infra.engines import create_sessionmaker, engine_for
from app.models.book import Book

from .books import count_books


async def save_book(session: AsyncSession, title: str) -> None:
    # The code under test: it commits its own work.
    session.add(Book(title=title))
    await session.commit()


@pytest.mark.parametrize("run", ["first", "second"])
async def test_a_committed_row_is_gone_in_the_next_test(db_session: AsyncSession, run: str) -> None:
    assert await count_books(db_session) == 0
    await save_book(db_session, run)
    assert await count_books(db_session) == 1


async def test_fails_after_committing(db_session: AsyncSession, session_database_url: URL) -> None:
    Path("databases-used").write_text(str(session_database_url.database))
    await save_book(db_session, "left behind?")
    raise AssertionError("failing on purpose")


async def test_fails_inside_the_database(db_session: AsyncSession) -> None:
    await save_book(db_session, "twice")
    await save_book(db_session, "twice")  # IntegrityError: the title is unique


async def test_nothing_is_left_by_the_failed_tests(
    db_session: AsyncSession, session_database: DatabaseUrl
) -> None:
    assert await count_books(db_session) == 0
    # A connection of another engine: the rows were rolled back, not just unseen.
    engine = engine_for(session_database)
    try:
        async with create_sessionmaker(engine)() as fresh:
            assert await count_books(fresh) == 0
    finally:
        await engine.dispose()
"""

CLIENT_TESTS = """\
import pytest
from fastapi import APIRouter, FastAPI
from httpx2 import AsyncClient
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.main import create_app
from app.models.book import Book
from app.infra.web.database import SessionDep

from .books import count_books

router = APIRouter()


class BookIn(BaseModel):
    title: str


@router.post("/books", status_code=201)
async def add_book(book: BookIn, session: SessionDep) -> dict[str, int]:
    row = Book(title=book.title)
    session.add(row)
    await session.commit()
    return {"id": row.id}


@pytest.fixture
def app() -> FastAPI:
    app = create_app()
    app.include_router(router)
    return app


@pytest.mark.parametrize("run", ["first", "second"])
async def test_a_posted_row_is_seen_by_the_test_and_gone_in_the_next(
    client: AsyncClient, db_session: AsyncSession, run: str
) -> None:
    assert await count_books(db_session) == 0
    response = await client.post("/books", json={"title": run})
    assert response.status_code == 201, response.text
    assert await db_session.scalar(select(Book.title).where(Book.id == response.json()["id"])) == run


async def test_health_sees_the_database(client: AsyncClient) -> None:
    health = {"status": "ok", "database": "up", "replica": "none"}
    assert (await client.get("/health")).json() == health
"""


def outcomes(output: str) -> dict[str, int]:
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|error)", output)}


def test_db_session_rolls_back_commits_and_failed_tests(
    service: Service, database_url: URL, postgres_server: URL
) -> None:
    service.add_book_revision(database_url)
    service.write("tests/books.py", COUNT_BOOKS)
    service.write("tests/test_isolation.py", SESSION_TESTS)
    # libpq parameters asyncpg does not know: every engine the fixtures make must go
    # through engine_for, or it fails with "unexpected keyword argument 'sslmode'".
    server = postgres_server.update_query_dict(
        {"sslmode": "disable", "application_name": "fixture-tests"}
    )
    env = service.env(TEST_DATABASE_URL=server.render_as_string(hide_password=False))

    result = service.pytest("tests/test_isolation.py", env=env)

    # Both failures are the tests' own: teardown rolled back without an error.
    assert outcomes(result.stdout) == {"passed": 3, "failed": 2}, result.stdout
    assert "FAILED tests/test_isolation.py::test_fails_after_committing" in result.stdout
    assert "FAILED tests/test_isolation.py::test_fails_inside_the_database" in result.stdout
    assert "IntegrityError" in result.stdout
    # After the run: the database the tests shared is gone from the server.
    used = (service.path / "databases-used").read_text()
    rows = sql(postgres_server, f"SELECT 1 FROM pg_database WHERE datname = '{used}'")[0]
    assert rows == []


def test_client_shares_the_tests_session(
    copier_template: Path, tmp_path: Path, database_url: URL, postgres_server: URL
) -> None:
    service = Service(render(copier_template, tmp_path / "api", web="fastapi"))
    service.add_book_revision(database_url)
    service.write("tests/books.py", COUNT_BOOKS)
    service.write("tests/test_books_api.py", CLIENT_TESTS)
    env = service.env(TEST_DATABASE_URL=postgres_server.render_as_string(hide_password=False))

    result = service.pytest("tests/test_books_api.py", env=env)

    assert outcomes(result.stdout) == {"passed": 3}, result.stdout + result.stderr


@pytest.fixture
def embedded_server_module(default_render: Path, tmp_path: Path):
    """The rendered tests/infra/embedded_server.py, imported from the render."""
    import importlib.util

    source = default_render / "tests" / "infra" / "embedded_server.py"
    spec = importlib.util.spec_from_file_location("rendered_embedded_server", source)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stale_server_directories_are_removed_and_live_ones_kept(
    embedded_server_module, tmp_path: Path
) -> None:
    import os
    import subprocess

    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = finished.pid  # a pid that no process has now
    running = subprocess.Popen(["sleep", "60"])
    try:
        prefix = embedded_server_module.PREFIX
        stale = tmp_path / f"{prefix}{dead}-abc"
        # Created by a live session, server not started yet: no postmaster.pid.
        starting = tmp_path / f"{prefix}{os.getpid()}-def"
        # Owner gone, server still running: not ours to remove.
        orphan = tmp_path / f"{prefix}{dead}-ghi"
        legacy = tmp_path / f"{prefix}jkl"  # made before owners were recorded
        for path in (stale, starting, orphan, legacy):
            (path / "base").mkdir(parents=True)
        (stale / "postmaster.pid").write_text(f"{dead}\n/data\n")
        (orphan / "postmaster.pid").write_text(f"{running.pid}\n/data\n")

        removed = embedded_server_module.remove_stale_data_dirs(tmp_path)
    finally:
        running.kill()
        running.wait()

    assert removed == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (starting, orphan, legacy)
    )


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm here")
def test_a_session_on_the_embedded_server_removes_a_crashed_sessions_directory(
    service: Service,
) -> None:
    import subprocess

    finished = subprocess.Popen(["true"])
    finished.wait()
    stale = Path("/dev/shm") / f"pytest-postgres-{finished.pid}-crashed"
    (stale / "base").mkdir(parents=True)
    try:
        output = service.ok(service.pytest("tests/infra/test_database.py"))  # no TEST_DATABASE_URL
        assert "passed" in output
        if shutil.disk_usage("/dev/shm").free > 2**30:  # the service uses /dev/shm then
            assert not stale.exists()
    finally:
        shutil.rmtree(stale, ignore_errors=True)
