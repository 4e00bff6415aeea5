"""What each libpq URL parameter becomes, and the settings that shape the app's engine.

The table tests import the rendered `infra/database_url.py` itself; the others run
the real `alembic` CLI or the service's engine against the session's PostgreSQL.
"""

from __future__ import annotations

import importlib
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest
from alembic import command
from alembic.config import Config
from certificates import make_certificates
from database import sql
from helpers import Service, one_line_failure
from sqlalchemy.engine import URL

PASSWORD = "url-s3cret"


@pytest.fixture(scope="module")
def rendered_package(
    default_render: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The rendered `app` package importable in this process, from a copy of the render."""
    root = Path(shutil.copytree(default_render, tmp_path_factory.mktemp("imported") / "svc"))
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == "app" or name.startswith("app.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def url_module(rendered_package: Path) -> ModuleType:
    return importlib.import_module("app.infra.database_url")


@pytest.fixture(scope="module")
def client_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A client certificate and its (unencrypted) key."""
    certificates = make_certificates(tmp_path_factory.mktemp("client"), "app")
    return {"cert": str(certificates.client_cert), "key": str(certificates.client_key)}


def arguments(url_module: ModuleType, query: str) -> tuple[str, dict[str, Any]]:
    database = url_module.parse_database_url(f"postgres://u:{PASSWORD}@db.example.com/app?{query}")
    engine_url = database.sqlalchemy_url.render_as_string(hide_password=True)
    return engine_url, dict(database.connect_args)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Handed to asyncpg's libpq-compatible parser.
        ("sslmode=verify-ca&sslrootcert=/etc/hostname", {"dsn": "postgresql://?sslmode=verify-ca&sslrootcert=%2Fetc%2Fhostname"}),
        # Real files: the key is loaded with its certificate when settings are read.
        ("sslcert={cert}&sslkey={key}&sslmode=require", {"dsn": "postgresql://?sslcert={cert}&sslkey={key}&sslmode=require"}),
        ("ssl=require", {"dsn": "postgresql://?sslmode=require"}),
        # Translated.
        ("options=-c%20search_path%3Da%2Cb%20-c%20jit%3Doff", {"server_settings": {"search_path": "a,b", "jit": "off"}}),
        ("options=--lock_timeout%3D5s", {"server_settings": {"lock_timeout": "5s"}}),
        ("application_name=svc", {"server_settings": {"application_name": "svc"}}),
        ("fallback_application_name=svc", {"server_settings": {"application_name": "svc"}}),
        ("connect_timeout=7", {"timeout": 7}),
        ("connect_timeout=1", {"timeout": 2}),  # libpq treats 1 as 2
        ("connect_timeout=0", {}),  # libpq: wait forever; the setting's bound holds
        ("statement_cache_size=0", {"statement_cache_size": 0}),
        # Dropped: client-side knobs with no asyncpg equivalent, no guarantee lost.
        ("gssencmode=disable&sslsni=1&keepalives=1&keepalives_idle=30&tcp_user_timeout=9", {}),
        ("channel_binding=prefer", {}),
        ("client_encoding=UTF8", {}),
        # Kept for SQLAlchemy's dialect.
        ("target_session_attrs=read-write", {}),
    ],
)  # fmt: skip
def test_libpq_parameters_become_asyncpg_arguments(
    url_module: ModuleType, client_files: dict[str, str], query: str, expected: dict[str, Any]
) -> None:
    if "dsn" in expected:
        quoted = {name: quote(path, safe="") for name, path in client_files.items()}
        query = query.format(**client_files)
        expected = {"dsn": expected["dsn"].format(**quoted)}
    engine_url, connect_args = arguments(url_module, query)
    assert connect_args == expected
    kept = "?target_session_attrs=read-write" if "target_session_attrs" in query else ""
    assert engine_url == f"postgresql+asyncpg://u:***@db.example.com/app{kept}"


def test_a_libpq_host_list_becomes_sqlalchemy_multi_host_form(url_module: ModuleType) -> None:
    url = url_module.parse_database_url(
        f"postgresql://u:{PASSWORD}@h1:5433,h2/app?sslmode=require"
    ).url
    assert url.query["host"] == ("h1:5433", "h2:5432")
    assert url.database == "app" and url.password == PASSWORD
    assert url_module.describe_endpoint(url) == "h1:5433,h2:5432/app"


def test_behind_a_transaction_pooler_no_statement_is_cached_unless_the_url_says(
    url_module: ModuleType,
) -> None:
    """Neither asyncpg's cache nor SQLAlchemy's (whose unnamed statements kept their old
    result columns after a migration: tests/test_warm_pools.py); a size the URL sets wins."""

    def prepared(query: str, pooler: str) -> tuple[Any, Any, Any]:
        url = url_module.parse_database_url(f"postgres://u@db.example.com/app{query}")
        database = url.using(pooler=pooler, connect_timeout=5)
        arguments = database.connect_args
        kept = database.sqlalchemy_url.query.get("prepared_statement_cache_size")
        return (
            arguments.get("statement_cache_size"),
            arguments.get("prepared_statement_cache_size"),
            kept,
        )

    assert prepared("", "transaction") == (0, 0, None)
    assert prepared("?prepared_statement_cache_size=50", "transaction") == (0, None, "50")
    assert prepared("", "none") == (None, None, None)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("foo=bar", "has parameter 'foo', which this service does not know"),
        ("sslmode=verify", "sslmode=verify is not one of disable, allow, prefer"),
        ("channel_binding=require&sslmode=require", "channel_binding=require cannot be honoured"),
        ("sslrootcert=system&sslmode=require", "sslrootcert=system needs sslmode=verify-full"),
        ("options=-d%205", "options may only hold '-c name=value' settings"),
        ("connect_timeout=soon", "connect_timeout=soon is not a number"),
        ("client_encoding=LATIN1", "client_encoding must be UTF8"),
        ("target_session_attrs=writable", "target_session_attrs=writable is not one of"),
        (
            "sslmode=verify-full&sslrootcert=/no/ca.pem",
            "sslrootcert file /no/ca.pem does not exist",
        ),
        ("sslcert=/etc&sslkey=/etc/hosts", "sslcert file /etc does not exist or is not a file"),
    ],
)
def test_bad_parameters_are_named_without_the_url(
    url_module: ModuleType, query: str, problem: str
) -> None:
    with pytest.raises(ValueError, match="^DATABASE_URL") as raised:
        arguments(url_module, query)
    assert problem in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_each_url_is_parsed_once_and_every_engine_is_built_from_it(
    rendered_package: Path,
    url_module: ModuleType,
    database_url: URL,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading the settings parses each URL once; the app's, the read replicas' and a
    migration run's engines (a real `alembic upgrade`, in this process) parse none."""
    parsed: list[str] = []
    translate = url_module.asyncpg_arguments  # what parsing a URL costs: libpq -> asyncpg
    monkeypatch.setattr(
        url_module,
        "asyncpg_arguments",
        lambda query, name: parsed.append(name) or translate(query, name),
    )
    for name in ("DATABASE_URL", "DATABASE_MIGRATION_URL", "DATABASE_READ_URL"):
        monkeypatch.setenv(name, database_url.render_as_string(hide_password=False))
    config = importlib.import_module("app.core.config")
    engines = importlib.import_module("app.infra.engines")
    config.get_settings.cache_clear()
    try:
        settings = config.get_settings()
        assert sorted(parsed) == ["DATABASE_MIGRATION_URL", "DATABASE_READ_URL", "DATABASE_URL"]
        built = [engines.create_app_engine(settings), engines.create_read_engine(settings)]
        assert all(engine is not None for engine in built)
        alembic = Config(str(rendered_package / "alembic.ini"))
        alembic.attributes["configure_logger"] = False
        command.upgrade(alembic, "head")  # alembic/env.py builds the migration engine
        assert len(parsed) == 3
    finally:
        config.get_settings.cache_clear()


def test_unknown_parameter_fails_the_cli_in_one_line(service: Service) -> None:
    result = service.alembic(
        "upgrade", "head", database_url=f"postgres://u:{PASSWORD}@localhost/app?pool=5"
    )
    one_line_failure(result, "DATABASE_URL has parameter 'pool'", secrets=(PASSWORD,))


def test_options_reach_the_server_through_the_cli(service: Service, database_url: URL) -> None:
    sql(database_url, "CREATE SCHEMA audit")
    url = database_url.update_query_dict({"options": "-c search_path=audit"})
    service.ok(service.alembic("upgrade", "head", database_url=url))
    # The version table went where search_path pointed.
    assert sql(
        database_url, "SELECT schemaname FROM pg_tables WHERE tablename = 'alembic_version'"
    )[0] == [("audit",)]


def test_url_connect_timeout_bounds_a_silent_server(service: Service) -> None:
    with socket.socket() as silent:  # accepts TCP, never answers PostgreSQL
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db?connect_timeout=2"
        result = service.alembic("upgrade", "head", database_url=url, timeout=30)
    one_line_failure(result, "timed out", secrets=(PASSWORD,))


ENGINE_PROGRAM = """\
import asyncio

from sqlalchemy import text

from app.core.config import get_settings
from app.infra.engines import create_app_engine
from app.infra.errors import describe_database_error


async def main() -> None:
    engine = create_app_engine(get_settings())
    pool = engine.pool
    checks = bool(pool.dispatch.checkout)  # DATABASE_POOL_PRE_PING: app/infra/connection_checks.py
    print("pool", pool.size(), pool._max_overflow, pool._timeout, pool._recycle, checks)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_sleep(5)"))
        print("slept")
    except Exception as exc:
        print("statement:", describe_database_error(exc, engine.url))
    await engine.dispose()


asyncio.run(main())
"""


def test_pool_and_statement_timeout_come_from_settings(service: Service, database_url: URL) -> None:
    service.write("engine_probe.py", ENGINE_PROGRAM)
    env = service.env(
        database_url,
        DATABASE_POOL_SIZE="3",
        DATABASE_POOL_MAX_OVERFLOW="2",
        DATABASE_POOL_TIMEOUT_SECONDS="4.5",
        DATABASE_POOL_RECYCLE_SECONDS="600",
        DATABASE_POOL_PRE_PING="false",
        DATABASE_STATEMENT_TIMEOUT_SECONDS="0.3",
    )
    output = service.ok(service.run(sys.executable, "engine_probe.py", env=env))
    assert "pool 3 2 4.5 600 False" in output, output
    assert "canceling statement due to statement timeout" in output, output


def test_engine_defaults_are_the_documented_ones(service: Service, database_url: URL) -> None:
    service.write("engine_probe.py", ENGINE_PROGRAM.replace("pg_sleep(5)", "1"))
    output = service.ok(
        service.run(sys.executable, "engine_probe.py", env=service.env(database_url))
    )
    assert "pool 5 10 30.0 1800 True" in output and "slept" in output, output
