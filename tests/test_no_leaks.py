"""Nothing leaks and nothing ends in a traceback (issue 19), in a rendered FastAPI service.

Each probe (a secret in a URL, a URL that cannot be read, a number out of range, a
host name that cannot be encoded, ...) goes through every way the service shows
its settings or a failure: the settings' repr, str and dumps, or their
ValidationError (str, `errors()`, `json()`); the migrate step; `alembic upgrade
head`; `uvicorn app.main:app` starting; then, where it starts, `/health` and a
request on the database. No output may hold a secret (raw or percent-encoded) or a
traceback, and each exit code is the one stated.

Request errors in a served service, and an outage: test_request_errors.py.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from certificates import encrypted_client_certificate
from dockerfile import exec_form, last
from helpers import Service, one_line_failure
from pydantic import ValidationError
from serving import api, assert_clean, get, live, serving

PASSWORD = "Pw7-secret"
KEY_PASSWORD = "Kp4-keypass"
WRONG_KEY_PASSWORD = "Wk2-wrongpass"
QUERY_PASSWORD = "Qp5-querypass"
READ_PASSWORD = "Rd9-readpass"
# libpq splits user-info at the first `:` and allows `,` in the password.
COMMA_PASSWORD = "Kx7,Wq2:Zr5"
DEV_DATABASE = "my_service_dev"  # the default render's
NOWHERE = "127.0.0.1:1"  # nothing listens there: a stopped server
__all__ = ["api", "live"]  # fixtures


@dataclass(frozen=True)
class Probe:
    env: dict[str, str]
    secrets: tuple[str, ...]
    # The settings are refused with one line holding this; None: they are valid.
    refused: str | None = None
    # Valid settings: what the migrate step and `alembic upgrade head` end with.
    failure: str | None = "cannot connect to PostgreSQL"
    health: dict[str, str] = field(
        default_factory=lambda: {"status": "unavailable", "database": "down", "replica": "none"}
    )
    items: int = 503  # GET /items/1
    # What the engine must still get: the password, the key's password.
    password: str | None = PASSWORD
    key_password: str | None = None


def url(password: str = PASSWORD, host: str = NOWHERE, query: str = "") -> str:
    return f"postgresql://app:{password}@{host}/app" + (f"?{query}" if query else "")


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A client certificate and its key, encrypted with KEY_PASSWORD."""
    cert, key = encrypted_client_certificate(tmp_path_factory.mktemp("client-key"), KEY_PASSWORD)
    return {"cert": str(cert), "key": str(key)}


def probes(client_key: dict[str, str], live: str) -> dict[str, Probe]:
    """Every probe of the issue's table, and the secrets: `live` is a migrated database."""
    tls = f"sslmode=require&sslcert={client_key['cert']}&sslkey={client_key['key']}"
    refused: dict[str, Any] = {"failure": None, "health": {}, "items": 0, "password": None}
    return {
        "sslpassword": Probe(
            {
                "DATABASE_URL": url(query=f"{tls}&sslpassword={KEY_PASSWORD}"),
                "DATABASE_MIGRATION_URL": url(query=f"{tls}&sslpassword={KEY_PASSWORD}"),
            },
            (PASSWORD, KEY_PASSWORD),
            key_password=KEY_PASSWORD,
        ),
        "sslpassword-wrong": Probe(
            {"DATABASE_URL": url(query=f"{tls}&sslpassword={WRONG_KEY_PASSWORD}")},
            (PASSWORD, WRONG_KEY_PASSWORD),
            refused="could not be decrypted: check sslpassword",
            **refused,
        ),
        "password-parameter": Probe(
            {"DATABASE_URL": f"postgresql://app@{NOWHERE}/app?password={QUERY_PASSWORD}"},
            (QUERY_PASSWORD,),
            password=QUERY_PASSWORD,
        ),
        "raw-at-in-password": Probe(
            {"DATABASE_URL": url("Ab9@Zq7-atpass")},
            ("Ab9", "Zq7-atpass"),
            refused="percent-encode both: '@' as %40, '/' as %2F",
            **refused,
        ),
        "raw-slash-in-password": Probe(
            {"DATABASE_URL": url("Ab9/Zq7-slashpass")},
            ("Ab9", "Zq7-slashpass"),
            refused="cannot tell where its user name and password end",
            **refused,
        ),
        "raw-comma-and-colon-in-password": Probe(
            {"DATABASE_URL": url(COMMA_PASSWORD)}, ("Kx7", "Wq2", "Zr5"), password=COMMA_PASSWORD
        ),
        "lock-timeout-inf": Probe(
            {"DATABASE_URL": url(), "MIGRATION_LOCK_TIMEOUT_SECONDS": "inf"},
            (PASSWORD,),
            refused="MIGRATION_LOCK_TIMEOUT_SECONDS: Input should be a finite number",
            **refused,
        ),
        "statement-timeout-nan": Probe(
            {"DATABASE_URL": url(), "DATABASE_STATEMENT_TIMEOUT_SECONDS": "nan"},
            (PASSWORD,),
            refused="DATABASE_STATEMENT_TIMEOUT_SECONDS: Input should be a finite number",
            **refused,
        ),
        "pool-recycle-huge": Probe(
            {"DATABASE_URL": url(), "DATABASE_POOL_RECYCLE_SECONDS": "1e300"},
            (PASSWORD,),
            refused="DATABASE_POOL_RECYCLE_SECONDS: Input should be less than or equal to",
            **refused,
        ),
        "idna-host": Probe(
            {"DATABASE_URL": url(host="hóst..example")},
            (PASSWORD,),
            failure="hóst..example:5432/app: not a valid host name",
        ),
        "idna-host-of-the-standby": Probe(
            {"DATABASE_URL": live, "DATABASE_READ_URL": url(READ_PASSWORD, "hóst..example")},
            (READ_PASSWORD,),
            failure=None,
            health={"status": "ok", "database": "up", "replica": "down"},
            items=404,
            password=None,  # the session server's: no password
        ),
        "newline": Probe(
            {"DATABASE_URL": url().replace("/app", "/ap\np")},
            (PASSWORD,),
            refused="DATABASE_URL holds a line break",
            **refused,
        ),
        "newline-encoded": Probe(
            {"DATABASE_URL": url().replace("/app", "/ap%0Ap")},
            (PASSWORD,),
            refused="DATABASE_URL holds a line break",
            **refused,
        ),
        "options-unbalanced-quote": Probe(
            {"DATABASE_URL": url(query="options=-c%20search_path%3D%22audit")},
            (PASSWORD,),
            refused="DATABASE_URL: options cannot be read: No closing quotation",
            **refused,
        ),
    }


PROBE_IDS = list(probes({"cert": "", "key": ""}, "").keys())


@pytest.fixture(scope="module")
def imported(api: Service) -> Iterator[Any]:
    """The render's `app.core.config`, imported in this process (settings only)."""
    sys.path.insert(0, str(api.path))
    try:
        yield importlib.import_module("app.core.config")
    finally:
        sys.path.remove(str(api.path))
        for name in [name for name in sys.modules if name == "app" or name.startswith("app.")]:
            del sys.modules[name]


@pytest.mark.parametrize(
    ("text", "user", "password", "hosts"),
    [
        ("postgresql://u:pa,ss:x@h:5433/db", "u", "pa,ss:x", ("h", 5433)),  # libpq: first `:`
        ("postgresql://u:p%40ss%2F@h/db", "u", "p@ss/", ("h", None)),  # percent-encoded
        ("postgresql://u:p?ss#@h/db?sslmode=disable", "u", "p?ss#", ("h", None)),
        ("postgresql://u:p,w@h1:5433,h2/db", "u", "p,w", ("h1:5433", "h2:5432")),  # a host list
        ("postgresql://u@h/db?options=-c%20x%3Da@b", "u", None, ("h", None)),  # `@` in the query
        ("postgresql:///db?host=/tmp&user=u", "u", None, (None, None)),
    ],
)
def test_user_info_is_read_as_libpq_reads_it(
    imported: Any, text: str, user: str, password: str | None, hosts: tuple[Any, ...]
) -> None:
    parsed = importlib.import_module("app.infra.database_url").parse_database_url(text).url
    assert (parsed.username, parsed.password) == (user, password)
    listed = parsed.query.get("host")
    assert (tuple(listed) if isinstance(listed, tuple) else (parsed.host, parsed.port)) == hosts


@pytest.mark.parametrize(
    "text", ["postgresql://u:a@b@h/db", "postgresql://u:a/b@h/db", "postgresql://u@x:a@b@h/db"]
)
def test_user_info_that_splits_two_ways_is_refused_without_showing_it(
    imported: Any, text: str
) -> None:
    parse = importlib.import_module("app.infra.database_url").parse_database_url
    with pytest.raises(ValueError, match="percent-encode both") as refused:
        parse(text)
    assert "a@b" not in str(refused.value) and "a/b" not in str(refused.value)


def test_settings_are_read_from_files_in_a_secrets_directory(
    imported: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for setting in imported.Settings.model_fields:
        monkeypatch.delenv(setting, raising=False)
    (tmp_path / "DATABASE_URL").write_text(url() + "\n")  # as `docker secret create` keeps it
    (tmp_path / "DATABASE_POOL_SIZE").write_text("7")
    settings = imported.Settings(_env_file=None, _secrets_dir=tmp_path)
    assert settings.DATABASE_URL.sqlalchemy_url.password == PASSWORD
    assert settings.DATABASE_POOL_SIZE == 7
    monkeypatch.setenv("DATABASE_POOL_SIZE", "3")  # the environment wins
    assert imported.Settings(_env_file=None, _secrets_dir=tmp_path).DATABASE_POOL_SIZE == 3
    # No such directory (outside containers, the default's case): no warning, no error.
    monkeypatch.setenv("DATABASE_URL", url())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imported.Settings(_env_file=None, _secrets_dir=tmp_path / "absent")
        imported.Settings(_env_file=None)


@pytest.mark.parametrize("name", PROBE_IDS)
def test_probe_leaks_nothing_and_ends_in_one_line(
    name: str,
    api: Service,
    imported: Any,
    client_key: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    live = request.getfixturevalue("live") if name == "idna-host-of-the-standby" else ""
    probe = probes(client_key, live)[name]

    # The settings, in this process: their repr, str and dumps, or their error.
    for setting in imported.Settings.model_fields:
        monkeypatch.delenv(setting, raising=False)
    for key, value in probe.env.items():
        monkeypatch.setenv(key, value)
    settings_line = settings_output(imported, probe)

    env = api.env(
        MIGRATION_WAIT_FOR_DATABASE_SECONDS="0",  # the migrate step tries once
        DATABASE_CONNECT_TIMEOUT_SECONDS="2",
        **probe.env,
    )
    migrate = api.run(sys.executable, "-m", "app.infra.migrate", env=env)
    alembic = api.alembic("upgrade", "head", env=env)
    if probe.refused is not None:
        for result in (migrate, alembic):
            one_line_failure(result, probe.refused, secrets=probe.secrets)
        command = exec_form(last(api.path / "Dockerfile", "CMD"))  # the image's
        assert command[:2] == ["uvicorn", "app.main:app"], command
        started = api.run(sys.executable, "-m", *command, env=env, timeout=60)
        assert started.returncode == 1, started
        assert (started.stdout + started.stderr).splitlines() == [settings_line]
        return
    for result in (migrate, alembic):
        if probe.failure is None:
            api.ok(result)
        else:
            one_line_failure(result, probe.failure, secrets=probe.secrets)
        assert_clean(result.stdout + result.stderr, probe.secrets)
    with serving(api, env, "app.test_app:app") as (base, output):
        health = get(f"{base}/health")
        items = get(f"{base}/items/1")
        read = get(f"{base}/read")  # ReadSessionDep: a bad standby sends it to the primary
    expected_status = 200 if probe.health["database"] == "up" else 503
    assert (health.status, health.json) == (expected_status, probe.health)
    assert items.status == probe.items, items
    if probe.items == 503:
        assert items.json == {"detail": "database unavailable"} and items.retry_after.isdigit()
    assert read.status == (200 if probe.health["database"] == "up" else 503), read
    assert_clean(output(), probe.secrets)


def settings_output(imported: Any, probe: Probe) -> str:
    """What the settings show, checked; the one line of a refusal (else "")."""
    settings_error_line = importlib.import_module("app.infra.settings").settings_error_line
    try:
        settings = imported.Settings(_env_file=None)
    except ValidationError as exc:
        assert probe.refused is not None, exc
        line = settings_error_line(exc)
        assert probe.refused in line and "\n" not in line, line
        for shown in (str(exc), repr(exc.errors()), exc.json(), line):
            assert_clean(shown, probe.secrets)
        return line
    assert probe.refused is None, f"accepted: {probe.env}"
    engines = importlib.import_module("app.infra.engines")
    engine = engines.create_app_engine(settings)
    # Bound values never in logs or exceptions: the app's engine and any other.
    assert engine.sync_engine.hide_parameters
    assert engines.engine_for(settings.DATABASE_URL).sync_engine.hide_parameters
    shown = [repr(settings), str(settings), repr(settings.model_dump()), settings.model_dump_json()]
    for shown_text in (*shown, repr(engine), repr(engine.url)):
        assert_clean(shown_text, probe.secrets)
    # Masked where shown, whole where used.
    database = settings.DATABASE_URL
    if probe.password is not None:
        assert database.sqlalchemy_url.password == probe.password
    if probe.key_password is not None:
        assert f"sslpassword={probe.key_password}" in database.connect_args["dsn"]
        assert "sslpassword=***" in settings.model_dump()["DATABASE_MIGRATION_URL"]
    return ""
