"""URLs with libpq's TLS parameters, against a real PostgreSQL that only speaks TLS.

The server (conftest's `tls_server`) refuses plain TCP, presents a certificate for
DNS:localhost only (so 127.0.0.1 is a host-name mismatch), and lets `tls_client`
log in with a client certificate alone. Every case runs the service's own code:
its settings and engine in one program, or the real `alembic` command line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from uuid import uuid4

import pytest
from conftest import TLS_CLIENT, TlsServer
from helpers import Service, one_line_failure
from servers import free_port

pytestmark = pytest.mark.xdist_group("tls")

PASSWORD = "tls-s3cret"  # in every URL; trust/cert auth ignores it, no output may show it

# Each case connects through `create_app_engine(get_settings())` and prints one line.
PROGRAM = """\
import asyncio, os, sys

from pydantic import ValidationError
from sqlalchemy import text

from app.core.config import get_settings
from app.infra.engines import create_app_engine
from app.infra.errors import describe_database_error
from app.infra.settings import settings_error_line

QUERY = text(
    "SELECT s.ssl, current_user, current_setting('search_path'), a.application_name"
    " FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE pid = pg_backend_pid()"
)


async def case(name, url, cert_file):
    os.environ["DATABASE_URL"] = url
    os.environ.pop("SSL_CERT_FILE", None)
    if cert_file:
        os.environ["SSL_CERT_FILE"] = cert_file  # OpenSSL's "system" trust store
    get_settings.cache_clear()
    try:
        engine = create_app_engine(get_settings())
    except ValidationError as exc:
        return f"{name}: FAILED {settings_error_line(exc)}"
    try:
        async with engine.connect() as connection:
            row = (await connection.execute(QUERY)).one()
        return f"{name}: ok " + "|".join(map(str, row))
    except Exception as exc:
        return f"{name}: FAILED {describe_database_error(exc, engine.url)}"
    finally:
        await engine.dispose()


async def main():
    for line in sys.stdin.read().splitlines():
        name, url, cert_file = line.split(" ")
        print(await case(name, url, cert_file if cert_file != "-" else None), flush=True)


asyncio.run(main())
"""


@pytest.fixture
def tls_database(service: Service, tls_server: TlsServer) -> Iterator[str]:
    """A database of the test's own on the TLS server."""
    name = f"tls_{uuid4().hex[:12]}"
    tls_server.cluster.psql(f'CREATE DATABASE "{name}" OWNER {TLS_CLIENT}')
    try:
        yield name
    finally:
        tls_server.cluster.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tls_url(
    server: TlsServer, database: str, host: str = "localhost", user: str = "postgres", **query: str
) -> str:
    """A libpq-style URL as a provider prints it, with a password (that must never show)."""
    hosts = query.pop("hosts", f"{host}:{server.cluster.port}")
    params = "&".join(f"{key}={value}" for key, value in query.items())
    return f"postgres://{user}:{PASSWORD}@{hosts}/{database}?{params}"


def test_every_sslmode_and_certificate_case_through_the_app_engine(
    service: Service, tls_server: TlsServer, tls_database: str
) -> None:
    certs, port = tls_server.certificates, tls_server.cluster.port
    ca, wrong = str(certs.ca), str(certs.wrong_ca)
    client = {"sslcert": str(certs.client_cert), "sslkey": str(certs.client_key)}

    def case(host: str = "localhost", trust: str = "-", **query: str) -> tuple[str, str]:
        return tls_url(tls_server, tls_database, host, **query), trust

    cases = {
        "disable": case(sslmode="disable"),
        "allow": case(sslmode="allow"),
        "prefer": case(sslmode="prefer"),
        "require": case(sslmode="require"),
        "require-wrong-ca": case(sslmode="require", sslrootcert=wrong),
        "verify-ca-by-ip": case("127.0.0.1", sslmode="verify-ca", sslrootcert=ca),
        "verify-ca-wrong-ca": case(sslmode="verify-ca", sslrootcert=wrong),
        "verify-full-by-ip": case("127.0.0.1", sslmode="verify-full", sslrootcert=ca),
        "verify-full": case(sslmode="verify-full", sslrootcert=ca),
        "client-cert": case(user=TLS_CLIENT, sslmode="verify-full", sslrootcert=ca, **client),
        "client-without-cert": case(user=TLS_CLIENT, sslmode="verify-full", sslrootcert=ca),
        "system-trust": case(trust=ca, sslrootcert="system"),
        "system-untrusted": case(trust=wrong, sslrootcert="system"),
        # A dead host first: libpq's host list moves on to the next.
        "host-list": case(hosts=f"localhost:{free_port()},localhost:{port}", sslmode="verify-full", sslrootcert=ca),
        "channel-binding-verified": case(sslmode="verify-full", sslrootcert=ca, channel_binding="require"),
        "channel-binding-unverified": case(sslmode="require", channel_binding="require"),
        "options": case(sslmode="require", options="-c%20search_path%3Daudit", application_name="probe", gssencmode="disable"),
    }  # fmt: skip
    service.write("tls_cases.py", PROGRAM)
    stdin = "\n".join(f"{name} {url} {trust}" for name, (url, trust) in cases.items())
    result = service.run(sys.executable, "tls_cases.py", env=service.env(), input=stdin)
    output = service.ok(result)
    assert PASSWORD not in output
    lines = dict(line.split(": ", 1) for line in output.splitlines())
    assert set(lines) == set(cases), output

    plain = 'True|postgres|"$user", public|'
    assert {name: line[3:] for name, line in lines.items() if line.startswith("ok ")} == {
        "allow": plain,
        "prefer": plain,
        "require": plain,
        "verify-ca-by-ip": plain,
        "verify-full": plain,
        "client-cert": plain.replace("postgres", TLS_CLIENT),
        "system-trust": plain,
        "host-list": plain,
        "channel-binding-verified": plain,
        "options": "True|postgres|audit|probe",
    }, output
    failures = {name: line for name, line in lines.items() if not line.startswith("ok ")}
    assert failures.keys() == {
        "disable",
        "require-wrong-ca",
        "verify-ca-wrong-ca",
        "verify-full-by-ip",
        "client-without-cert",
        "system-untrusted",
        "channel-binding-unverified",
    }, output
    for name, needle in {
        "disable": "pg_hba.conf rejects connection",
        "require-wrong-ca": "certificate verify failed",
        "verify-ca-wrong-ca": "certificate verify failed",
        "verify-full-by-ip": "not valid for '127.0.0.1'",
        "client-without-cert": "certificate",
        "system-untrusted": "certificate verify failed",
        "channel-binding-unverified": "channel_binding=require cannot be honoured",
    }.items():
        assert failures[name].startswith("FAILED ") and needle in failures[name], failures[name]


@pytest.mark.parametrize(
    ("case", "outcome"),
    [
        ("verify-full", "postgres"),
        ("client-cert", TLS_CLIENT),
        ("wrong-ca", "certificate verify failed"),
        ("host-name-mismatch", "not valid for '127.0.0.1'"),
        ("plain-tcp", "no encryption"),
    ],
)
def test_alembic_cli_migrates_over_tls_or_fails_in_one_line(
    service: Service, tls_server: TlsServer, tls_database: str, case: str, outcome: str
) -> None:
    certs = tls_server.certificates
    host, user, query = (
        "localhost",
        "postgres",
        {"sslmode": "verify-full", "sslrootcert": str(certs.ca)},
    )
    if case == "client-cert":
        user = TLS_CLIENT
        query.update(sslcert=str(certs.client_cert), sslkey=str(certs.client_key))
    elif case == "wrong-ca":
        query["sslrootcert"] = str(certs.wrong_ca)
    elif case == "host-name-mismatch":
        host = "127.0.0.1"
    elif case == "plain-tcp":
        query = {"sslmode": "disable"}
    url = tls_url(tls_server, tls_database, host, user, **query)

    result = service.alembic("upgrade", "head", database_url=url)

    if case in ("verify-full", "client-cert"):
        service.ok(result)
        owner = tls_server.cluster.psql(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'alembic_version'", tls_database
        )
        assert owner == outcome  # who logged in: by certificate alone, for tls_client
        assert PASSWORD not in result.stdout + result.stderr
    else:
        one_line_failure(result, outcome, secrets=(PASSWORD,))
