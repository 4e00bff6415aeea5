"""An existing service turns observability on with `copier update -d observability=otel`:
everything arrives through template-owned files (the lifespan runs it), the user's
main.py stays byte for byte, and the service's own observability tests pass. A bad
log setting ends the migrate step and the server's start in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from dockerfile import exec_form, last
from helpers import Service, render
from servers import free_port
from sqlalchemy.engine import URL
from updating import assert_no_conflicts_left, changed_files, commit_all, copier_update, git


@pytest.mark.usefixtures("git_identity")
def test_an_update_turns_observability_on_and_leaves_main_py_alone(
    copier_template: Path, tmp_path: Path, postgres_server: URL
) -> None:
    service = Service(render(copier_template, tmp_path / "svc", web="fastapi"))
    root = service.path
    git(root, "init", "-q")
    commit_all(root, "a service without observability")
    main_py = (root / "app/main.py").read_bytes()

    service.ok(copier_update(service, "-d", "observability=otel", "--vcs-ref", ":current:"))
    assert_no_conflicts_left(root)
    assert (root / "app/main.py").read_bytes() == main_py
    changed = changed_files(root)
    for path in (
        "app/infra/tracing.py",
        "app/infra/logs.py",
        "app/infra/web/observability.py",
        "app/infra/web/database.py",
        "tests/infra/test_observability.py",
        "pyproject.toml",
    ):
        assert path in changed, (path, changed)
    assert "structlog" in (root / "pyproject.toml").read_text()

    env = service.env(TEST_DATABASE_URL=postgres_server.render_as_string(hide_password=False))
    output = service.ok(service.pytest("tests/infra/test_observability.py", env=env))
    assert "11 passed" in output, output


def test_a_bad_log_setting_ends_the_migrate_step_and_the_start_in_one_line(
    copier_template: Path, tmp_path: Path
) -> None:
    service = Service(
        render(copier_template, tmp_path / "svc", web="fastapi", observability="otel")
    )
    env = service.env(
        "postgresql://app:pw@127.0.0.1:1/app",  # never reached: both stop first
        UVICORN_HOST="127.0.0.1",
        UVICORN_PORT=str(free_port()),
        LOG_FORMAT="yaml",
    )
    migrate = service.run(sys.executable, "-m", "app.infra.migrate", env=env, timeout=60)
    command = exec_form(last(service.path / "Dockerfile", "CMD"))
    started = service.run(sys.executable, "-m", *command, env=env, timeout=60)
    for result, prefix in (
        (migrate, "FAILED: invalid settings: LOG_FORMAT"),
        (started, "invalid settings: LOG_FORMAT"),
    ):
        lines = (result.stdout + result.stderr).splitlines()
        assert result.returncode == 1, lines
        assert len(lines) == 1 and lines[0].startswith(prefix), lines
