"""Where the embedded test server keeps its data, and the cleanup of crashed sessions'.

Template-owned: `copier update` keeps this file current. Used by tests/infra/db_fixtures.py.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

SHM = Path("/dev/shm")
PREFIX = "pytest-postgres-"
# The owning pytest process's pid is in the name: written with the directory, in one
# step, so no other session can see the directory before it knows who owns it.
OWNED = re.compile(rf"{PREFIX}(?P<owner>\d+)-\w+")
# Only the embedded server gets these: no crash safety (it is thrown away), and
# WAL kept small (each clone writes the whole database to it; the default is 1GB).
SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_wal_size": "'96MB'",
    "min_wal_size": "'32MB'",
}


def data_dir(fallback: Callable[[], Path]) -> Path:
    """In RAM where Linux offers it: cloning a database is disk-bound (~10x faster)."""
    # Not the 64MB /dev/shm of a default Docker container.
    if SHM.is_dir() and os.access(SHM, os.W_OK) and shutil.disk_usage(SHM).free > 2**30:
        remove_stale_data_dirs(SHM)
        return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=SHM))
    return fallback()


def remove_stale_data_dirs(parent: Path) -> list[Path]:
    """Remove the data directories that crashed sessions left (40-100 MB each).

    Stale: its owner is dead and its server is not running. A directory another live
    session has created but not started yet has a live owner, so it stays; so do
    directories made before owners were recorded, and servers still running.
    """
    removed = []
    for path in parent.glob(f"{PREFIX}*"):
        match = OWNED.fullmatch(path.name)
        if match is None or _alive(int(match["owner"])) or _postmaster_alive(path):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _postmaster_alive(path: Path) -> bool:
    try:
        first_line = (path / "postmaster.pid").read_text().split("\n", 1)[0]
    except FileNotFoundError:
        return False
    except OSError:  # unreadable: assume someone's server
        return True
    return not first_line.strip().isdigit() or _alive(int(first_line))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, under another user (the server's system user)
        return True
    return True
