"""scripts/devdb.py runs quietly where XDG_RUNTIME_DIR is unset (containers, CI, ssh)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from helpers import Service


def test_devdb_prints_no_runtime_dir_warning(default_render: Path, open_tmp_path: Path) -> None:
    service = Service(Path(shutil.copytree(default_render, open_tmp_path / "my-service")))
    env = service.env()
    env.pop("XDG_RUNTIME_DIR", None)
    devdb = (sys.executable, "scripts/devdb.py")
    try:
        started = service.run(*devdb, "start", env=env)
        url = service.run(*devdb, "url", env=env)
    finally:
        stopped = service.run(*devdb, "stop", env=env)
    for result in (started, url, stopped):
        service.ok(result)
        assert "XDG_RUNTIME_DIR" not in result.stderr, result.stderr
    assert "PostgreSQL is up" in started.stdout
    assert url.stdout.startswith("postgresql+asyncpg://")
    assert "PostgreSQL stopped." in stopped.stdout
