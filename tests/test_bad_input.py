"""Bad settings or an unreachable database: one readable line, no password, nothing applied.

Every case runs the real `alembic upgrade head` in a rendered service.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

import pytest
from database import sql, table_names
from helpers import Service, one_line_failure
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

PASSWORD = "s3cret-Pw"
# Every character that breaks configparser interpolation or URL parsing.
AWKWARD_PASSWORD = "p%ss@w:rd/1%"


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    return one_line_failure(result, *needles, secrets=(PASSWORD, AWKWARD_PASSWORD))


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("", "DATABASE_URL is empty"),
        ("not a url", "DATABASE_URL is not a URL"),
        (
            f"postgresql+psycopg2://u:{PASSWORD}@localhost/db",
            "unsupported scheme 'postgresql+psycopg2'",
        ),
        (f"mysql://u:{PASSWORD}@localhost/db", "unsupported scheme 'mysql'"),
        (f"postgresql://u:{PASSWORD}@localhost/", "names no database"),
    ],
    ids=["empty", "malformed", "psycopg2", "mysql", "no-database"],
)
def test_invalid_url_is_refused_in_one_line(service: Service, url: str, needle: str) -> None:
    assert_one_line_failure(service.alembic("upgrade", "head", database_url=url), needle)


def test_missing_url_says_where_to_set_it(service: Service) -> None:
    result = service.alembic("upgrade", "head")  # no DATABASE_URL, no .env
    assert_one_line_failure(result, "DATABASE_URL is not set", ".env")


def test_closed_port_names_host_and_port(service: Service) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db"
    result = service.alembic("upgrade", "head", database_url=url)
    assert_one_line_failure(result, f"127.0.0.1:{port}/db", "cannot connect")


def test_silent_server_fails_within_the_connect_timeout(service: Service) -> None:
    # Accepts TCP connections (the kernel's backlog) but never answers the
    # PostgreSQL handshake: only the connect timeout can end the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db"
        env = service.env(url, DATABASE_CONNECT_TIMEOUT_SECONDS="1")
        # Without a connect timeout this would block until the subprocess timeout.
        result = service.alembic("upgrade", "head", env=env, timeout=30)
    assert_one_line_failure(result, f"127.0.0.1:{port}/db", "timed out")


def test_missing_database_is_named(service: Service, postgres_server: URL) -> None:
    url = postgres_server.set(database="no_such_database", password=PASSWORD)
    result = service.alembic("upgrade", "head", database_url=url)
    assert_one_line_failure(result, "no_such_database", "does not exist")


def wait_until_passwords_are_checked(url: URL, seconds: float = 10.0) -> None:
    """pg_reload_conf() only signals the server: wait for the new rule to be in force."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sql(url.set(password=PASSWORD), "SELECT 1")
        except DBAPIError as exc:
            if "password authentication failed" in str(exc):
                return
            raise
        time.sleep(0.05)


@pytest.fixture(scope="module")
def password_server(postgres_server: URL) -> Iterator[URL]:
    """A role that must log in with AWKWARD_PASSWORD, owning a database of its own.

    The embedded server trusts local connections; its pg_hba.conf (a local file)
    gets a line that requires the password for this role. An external server is
    used as it is, if it asks for passwords at all.
    """
    role = database = f"pw_{uuid4().hex[:12]}"  # unique: xdist workers may share a server
    literal = AWKWARD_PASSWORD.replace("'", "''")
    sql(
        postgres_server,
        f"CREATE ROLE {role} LOGIN PASSWORD '{literal}'",
        f"CREATE DATABASE {database} OWNER {role}",
    )
    hba = Path(sql(postgres_server, "SHOW hba_file")[0][0][0])
    try:
        original: str | None = hba.read_text()
    except OSError:  # a server on another machine or in a container
        original = None
    try:
        if original is not None:
            hba.write_text(
                f"local all {role} scram-sha-256\nhost all {role} all scram-sha-256\n{original}"
            )
            sql(postgres_server, "SELECT pg_reload_conf()")
        url = postgres_server.set(username=role, password=AWKWARD_PASSWORD, database=database)
        wait_until_passwords_are_checked(url)
        yield url
    finally:
        if original is not None:
            hba.write_text(original)
            sql(postgres_server, "SELECT pg_reload_conf()")
        sql(
            postgres_server,
            f"DROP DATABASE IF EXISTS {database} WITH (FORCE)",
            f"DROP ROLE IF EXISTS {role}",
        )


def test_wrong_password_is_refused_without_echoing_it(
    service: Service, password_server: URL
) -> None:
    url = password_server.set(password=PASSWORD)
    result = service.alembic("upgrade", "head", database_url=url)
    if result.returncode == 0:
        pytest.skip("this PostgreSQL does not ask for passwords")
    assert_one_line_failure(
        result, "password authentication failed", password_server.username or ""
    )


def test_password_with_url_and_interpolation_characters_works(
    service: Service, password_server: URL
) -> None:
    service.add_book_revision(password_server)
    output = service.ok(service.alembic("upgrade", "head", database_url=password_server))
    output += service.ok(service.alembic("check", database_url=password_server))
    assert "book" in table_names(password_server)
    for secret in (AWKWARD_PASSWORD, quote(AWKWARD_PASSWORD, safe="")):
        assert secret not in output
