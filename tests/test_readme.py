"""The README's two set-up commands are the ones that work."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from database import sql, table_names
from helpers import ROOT
from sqlalchemy.engine import make_url

TEMPLATE_URL = "https://github.com/copier-async-postgres/copier-async-postgres.git"


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, flags=re.DOTALL)
    assert block, "README has no ```bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands() -> None:
    service, tests = setup_commands()
    assert "copier copy" in service and TEMPLATE_URL in service
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_exactly() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in ci if line.strip() and not line.startswith(("#", "set ", "cd "))]
    # Only system packages (apt-get, for the PgBouncer and TLS tests) come first.
    assert commands == [".ci/system-packages", setup_commands()[1]]


@pytest.mark.slow
def test_readme_service_command_brings_a_service_up(
    copier_template: Path, open_tmp_path: Path
) -> None:
    """Runs the first README line as a new user would, against this checkout."""
    tmp_path = open_tmp_path
    command = setup_commands()[0].replace(TEMPLATE_URL, str(copier_template))
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "DATABASE_URL", "TEST_DATABASE_URL", "PYTHONPATH"}
    }
    env.update(
        HOME=str(home),
        # Reuse the machine's download cache: a fresh HOME would download everything again.
        PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
        PYTEST_DEBUG_TEMPROOT=str(tmp_path),
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    service = tmp_path / "my-service"
    try:
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert re.search(r"\b21 passed\b", output), output
        dotenv = (service / ".env").read_text()
        url = make_url(re.search(r"^DATABASE_URL=(.*)$", dotenv, flags=re.MULTILINE).group(1))
        assert url.database == "my_service_dev"
        assert "alembic_version" in table_names(url), "migrations were not applied"
        assert sql(url, "SELECT count(*) FROM alembic_version")[0] == [(0,)]
    finally:
        if (service / ".venv" / "bin" / "python").exists():
            subprocess.run(
                [service / ".venv" / "bin" / "python", "scripts/devdb.py", "stop"],
                cwd=service,
                env=env,
                capture_output=True,
                timeout=120,
            )
