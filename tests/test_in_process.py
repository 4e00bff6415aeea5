"""Migrations run from code: inside a running event loop, on a connection or engine
handed in by the caller, without silencing the application's loggers.

Each case is a small program run in the rendered service, as its start-up code
or an async test would call Alembic.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
from database import table_names
from helpers import Service
from sqlalchemy.engine import URL

PRELUDE = """\
import asyncio
import logging
import os
import sys

from alembic import command
from alembic.config import Config
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine

config = Config("alembic.ini")
target = os.environ["TARGET_URL"]
"""


# The Alembic cookbook's recipe: a sync connection from `run_sync`, inside a transaction.
RUN_SYNC = """
        def upgrade(connection) -> None:
            config.attributes["connection"] = {handed_in}
            command.upgrade(config, "head")

        async def start_up() -> None:
            engine = create_async_engine(target, poolclass=pool.NullPool)
            async with engine.begin() as connection:
                await connection.run_sync(upgrade)
            await engine.dispose()

        asyncio.run(start_up())
"""


@pytest.fixture
def booked(service: Service, database_url: URL) -> Service:
    """A service with one revision (the book table) not yet applied."""
    service.add_book_revision(database_url)
    service.ok(service.alembic("downgrade", "base", database_url=database_url))
    return service


def run_program(service: Service, url: URL, program: str, *, with_database_url: bool) -> str:
    """Run `program` in the service; DATABASE_URL is set only if asked for."""
    service.write("program.py", PRELUDE + textwrap.dedent(program))
    env = service.env(
        url if with_database_url else None, TARGET_URL=url.render_as_string(hide_password=False)
    )
    return service.ok(service.run(sys.executable, "program.py", env=env))


def test_upgrade_inside_a_running_loop_keeps_the_app_loggers(
    booked: Service, database_url: URL
) -> None:
    output = run_program(
        booked,
        database_url,
        """
        async def start_up() -> None:
            logging.basicConfig(stream=sys.stdout, format="%(name)s: %(message)s")
            log = logging.getLogger("service.startup")
            command.upgrade(config, "head")  # what a FastAPI lifespan might do
            log.warning("still heard after migrations")
            print("logger disabled:", log.disabled)

        asyncio.run(start_up())
        """,
        with_database_url=True,
    )
    assert "asyncio.run() cannot be called" not in output
    assert "still heard after migrations" in output
    assert "logger disabled: False" in output
    assert "book" in table_names(database_url)


def test_async_engine_handed_in_is_used_and_disposed(booked: Service, database_url: URL) -> None:
    output = run_program(
        booked,
        database_url,
        """
        async def start_up() -> None:
            engine = create_async_engine(target)  # pooled, like an app's engine
            config.attributes["connection"] = engine
            command.upgrade(config, "head")
            # Disposed: no pooled connection left behind, and the engine works
            # again on this loop (its old pool belonged to Alembic's loop).
            async with engine.connect() as connection:
                others = await connection.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ))
            await engine.dispose()
            print("other connections:", others)

        asyncio.run(start_up())
        """,
        with_database_url=False,  # proves the handed-in engine is what migrates
    )
    assert "other connections: 0" in output
    assert "book" in table_names(database_url)


def test_connection_handed_in_through_run_sync_is_used(booked: Service, database_url: URL) -> None:
    run_program(
        booked, database_url, RUN_SYNC.format(handed_in="connection"), with_database_url=False
    )
    assert "book" in table_names(database_url)


def test_anything_else_handed_in_is_refused_by_name(booked: Service, database_url: URL) -> None:
    booked.write(
        "program.py",
        PRELUDE + 'config.attributes["connection"] = target\ncommand.upgrade(config, "head")\n',
    )
    env = booked.env(TARGET_URL=database_url.render_as_string(hide_password=False))
    result = booked.run(sys.executable, "program.py", env=env)
    assert result.returncode != 0
    assert "must be a Connection, an AsyncEngine or have a connect() method" in result.stderr
    assert "not str" in result.stderr
    assert "book" not in table_names(database_url)


def test_an_object_with_connect_is_used_as_pytest_alembic_hands_it_in(
    booked: Service, database_url: URL
) -> None:
    # pytest-alembic's WrappingConnection: only `.connect()`, giving a Connection
    # that is already inside the caller's transaction (which the caller commits).
    run_program(
        booked,
        database_url,
        """
        import contextlib

        class WrappingConnection:
            def __init__(self, connection):
                self.connection = connection

            @contextlib.contextmanager
            def connect(self):
                yield self.connection

        """
        + RUN_SYNC.format(handed_in="WrappingConnection(connection)"),
        with_database_url=False,
    )
    assert "book" in table_names(database_url)


def test_an_autocommit_block_inside_the_callers_transaction_is_refused_whole(
    booked: Service, database_url: URL
) -> None:
    [revision] = booked.revisions()
    source = revision.read_text()
    booked.write(
        str(revision.relative_to(booked.path)),
        source.replace(
            "def upgrade() -> None:\n",
            "def upgrade() -> None:\n"
            "    with op.get_context().autocommit_block():\n"
            '        op.execute("SELECT 1")\n',
        ),
    )
    booked.write(
        "program.py",
        PRELUDE + textwrap.dedent(RUN_SYNC.format(handed_in="connection")),
    )
    env = booked.env(TARGET_URL=database_url.render_as_string(hide_password=False))
    result = booked.run(sys.executable, "program.py", env=env)
    assert result.returncode != 0
    assert "autocommit_block(), which cannot run inside the caller's transaction" in result.stderr
    assert "book" not in table_names(database_url)
