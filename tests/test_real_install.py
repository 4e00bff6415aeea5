"""A real install through Poetry, then migrations and the service's tests through it,
as `scripts/bootstrap.py` (the README's path) does it. Through uv, the default, the
README's own command does the same (tests/test_readme.py); here the other manager,
with the web layer's dependencies, so that both managers and both web answers are
installed for real in each run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import BOOK_MODEL, Service, render

# This machine's PyPI mirror serves the simple index but not the per-version JSON
# API that Poetry's default source reads; the simple index is the same packages.
POETRY_SIMPLE_INDEX = """
[[tool.poetry.source]]
name = "pypi-simple"
url = "https://pypi.org/simple/"
priority = "primary"
"""


@pytest.mark.slow
def test_bootstrap_installs_migrates_and_tests_through_poetry(
    copier_template: Path, open_tmp_path: Path
) -> None:
    service = Service(
        render(copier_template, open_tmp_path / "svc", package_manager="poetry", web="fastapi")
    )
    with (service.path / "pyproject.toml").open("a") as pyproject:
        pyproject.write(POETRY_SIMPLE_INDEX)
    # Tools come from the machine or from bootstrap's own install, not from this venv.
    path = os.pathsep.join(
        entry
        for entry in os.environ["PATH"].split(os.pathsep)
        if not (Path(entry) / "python").resolve().is_relative_to(Path(os.sys.prefix).resolve())
    )
    env = service.env(
        PATH=path, PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache/pip"))
    )
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD")  # the service's own environment, as a user has it
    manager = service.path / ".tools/bin/poetry"
    try:
        result = service.run("python3", "scripts/bootstrap.py", env=env, timeout=900)
        output = service.ok(result)
        # The manager made the environment and its lock file.
        assert (service.path / ".venv/bin/python").exists()
        assert (service.path / "poetry.lock").exists()
        # Migrations through the manager: a new model, its revision, applied, checked.
        service.add_model("book", BOOK_MODEL)
        run = [manager if manager.exists() else "poetry", "run"]
        service.ok(
            service.run(*run, "alembic", "revision", "--autogenerate", "-m", "add book", env=env)
        )
        service.ok(service.run(*run, "alembic", "upgrade", "head", env=env))
        assert "No new upgrade operations detected" in service.ok(
            service.run(*run, "alembic", "check", env=env)
        )
        tests = service.ok(service.run(*run, "pytest", "-q", env=env))
        assert re.search(r"\d+ passed", tests) and "failed" not in tests
        service.ok(service.run("make", "lint", env=env))
        assert "==> running the tests" in output
    finally:
        subprocess.run(
            [service.path / ".venv/bin/python", "scripts/devdb.py", "stop"],
            cwd=service.path,
            capture_output=True,
            timeout=120,
            check=False,
        )
