"""Every combination of the options renders, lints, type-checks and runs the full
database cycle; the answers that do not define combinations rotate across them."""

from __future__ import annotations

import itertools
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from database import table_names
from dockerfile import exec_form, instructions, last
from helpers import BOOK_MODEL, Service, assert_clean_render, render
from sqlalchemy.engine import URL
from workflows import assert_hardened, zizmor

OPTIONS = {
    "package_manager": ["uv", "poetry"],
    "web": ["none", "fastapi"],
    "ci": ["github", "none"],
}
ROTATING = {
    # 3.14 is checked without a 3.14 interpreter: ruff and mypy take the target from
    # the rendered pyproject (target-version, python_version).
    "python_version": ["3.11", "3.12", "3.13", "3.14"],
    "postgres_version": [15, 16, 17, 18],
    "package_name": ["app", "bookstore"],
    # Spread so that each of web and package_name meets both values.
    "observability": ["none", "otel", "otel", "none"],
}
# The service's own suite: how many tests pass, by web and observability.
SUITE_PASSES = {
    ("none", "none"): 21,
    ("none", "otel"): 25,
    ("fastapi", "none"): 40,
    ("fastapi", "otel"): 51,
}


def matrix() -> list[dict[str, Any]]:
    combos = []
    for index, values in enumerate(itertools.product(*OPTIONS.values())):
        answers = dict(zip(OPTIONS, values, strict=True))
        answers.update({key: choices[index % len(choices)] for key, choices in ROTATING.items()})
        combos.append(answers)
    return combos


def combo_id(answers: dict[str, Any]) -> str:
    return "-".join(str(answers[key]) for key in (*OPTIONS, "package_name", "observability"))


def test_matrix_covers_every_option_and_rotating_value() -> None:
    combos = matrix()
    assert len(combos) == 8
    for key, choices in {**OPTIONS, **ROTATING}.items():
        assert {combo[key] for combo in combos} == set(choices), key


def with_its_mypy_group(answers: dict[str, Any]) -> Any:
    """The combinations of one Python version on one worker (conftest's `mypy_cache`)."""
    group = pytest.mark.xdist_group(f"mypy-{answers['python_version']}")
    return pytest.param(answers, id=combo_id(answers), marks=group)


@pytest.mark.parametrize("answers", [with_its_mypy_group(answers) for answers in matrix()])
def test_combination_renders_lints_and_migrates(
    answers: dict[str, Any],
    copier_template: Path,
    tmp_path: Path,
    database_url: URL,
    postgres_server: URL,
    mypy_cache: Path,
) -> None:
    service = Service(render(copier_template, tmp_path / "svc", **answers), answers["package_name"])
    root = service.path
    python = sys.executable
    assert_clean_render(root)

    # The Python version reaches every tool's target.
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    version = answers["python_version"]
    assert pyproject["project"]["requires-python"] == f">={version}"
    assert pyproject["tool"]["ruff"]["target-version"] == f"py{version.replace('.', '')}"
    assert pyproject["tool"]["mypy"]["python_version"] == version

    # Files that depend on the options, and only those.
    check_observability(service, answers, pyproject)
    assert (root / "poetry.toml").exists() == (answers["package_manager"] == "poetry")
    assert (root / service.package / "main.py").exists() == (answers["web"] == "fastapi")
    assert (root / "tests/infra/test_health.py").exists() == (answers["web"] == "fastapi")
    workflow = root / ".github/workflows/ci.yml"
    assert workflow.exists() == (answers["ci"] == "github")
    assert not (root / ".github").exists() or answers["ci"] == "github"
    assert f".tools/bin/{answers['package_manager']})" in (root / "Makefile").read_text()
    if workflow.exists():
        service.ok(
            service.run(
                python,
                "-m",
                "check_jsonschema",
                "--builtin-schema",
                "vendor.github-workflows",
                workflow,
            )
        )
        zizmor(workflow)  # supply-chain audits: no findings
        assert_hardened(workflow)
        jobs = yaml.safe_load(workflow.read_text())["jobs"]
        assert (
            jobs["test"]["services"]["postgres"]["image"]
            == f"postgres:{answers['postgres_version']}"
        )
        steps = "\n".join(step.get("run", "") for step in jobs["test"]["steps"])
        for command in (
            "ruff check",
            "mypy",
            "python -m tests.infra.migration_lint",
            "alembic upgrade head",
            "alembic check",
            "pytest",
        ):
            assert f"{answers['package_manager']} run {command}" in steps
        # make compat on pull requests, with the history it takes the previous release from.
        [compat] = [
            step for step in jobs["test"]["steps"] if "tests.infra.compat" in step.get("run", "")
        ]
        assert compat["if"] == "github.event_name == 'pull_request'"
        assert jobs["test"]["steps"][0]["with"]["fetch-depth"] == 0
    service.ok(
        service.run(python, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml")
    )
    hooks = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())["repos"][-1]["hooks"]
    [squawk] = [hook for hook in hooks if hook["id"] == "squawk"]
    assert (
        squawk["entry"] == f"{answers['package_manager']} run python -m tests.infra.migration_lint"
    )
    squawk_config = tomllib.loads((root / ".squawk.toml").read_text())
    assert squawk_config["pg_version"] == f"{answers['postgres_version']}.0"
    check_deploy_files(service, answers)
    check_layout(service)

    # The full database cycle, through the real alembic command line.
    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    service.add_model("book", BOOK_MODEL)
    assert service.alembic("check", database_url=database_url).returncode != 0
    service.ok(
        service.alembic("revision", "--autogenerate", "-m", "add book", database_url=database_url)
    )
    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    service.ok(service.alembic("check", database_url=database_url))
    assert "book" in table_names(database_url)
    service.ok(service.alembic("downgrade", "base", database_url=database_url))
    assert table_names(database_url) == {"alembic_version"}

    # The render, a model and an autogenerated revision included, is lint- and type-clean.
    service.ok(service.run(python, "-m", "ruff", "check", "."))
    service.ok(service.run(python, "-m", "ruff", "format", "--check", "."))
    service.ok(
        service.run(
            python, "-m", "mypy", "--strict", "--cache-dir", mypy_cache / answers["python_version"]
        )
    )

    # The service's own suite, on this session's server; with FastAPI, its fuzz test at
    # half its cases (tests/infra/test_api_fuzz.py), four times a run.
    env = service.env(
        TEST_DATABASE_URL=postgres_server.render_as_string(hide_password=False), FUZZ_EXAMPLES="10"
    )
    output = service.ok(service.pytest(env=env))
    passed = int(re.search(r"(\d+) passed", output).group(1))
    assert passed == SUITE_PASSES[answers["web"], answers["observability"]], output
    assert not re.search(r"\d+ (failed|error)", output), output


def check_observability(service: Service, answers: dict[str, Any], pyproject: Any) -> None:
    """observability=otel adds its modules and dependencies; off, not one of them."""
    otel, web = answers["observability"] == "otel", answers["web"] == "fastapi"
    infra = service.path / service.package / "infra"
    assert (infra / "tracing.py").exists() == (infra / "logs.py").exists() == otel
    assert (infra / "web/observability.py").exists() == (otel and web)
    assert (service.path / "tests/infra/test_observability.py").exists() == otel
    names = {re.split(r"[\[<>=~ ]", dep)[0] for dep in pyproject["project"]["dependencies"]}
    assert {name for name in names if name.startswith("opentelemetry")} == (
        {
            "opentelemetry-sdk",
            "opentelemetry-exporter-otlp-proto-http",
            "opentelemetry-instrumentation-sqlalchemy",
        }
        | ({"opentelemetry-instrumentation-fastapi"} if web else set())
        if otel
        else set()
    )
    assert ("prometheus-client" in names) == (otel and web)
    assert ("structlog" in names) == otel


# What a reader of Alembic's `async` template looks for in env.py.
ENV_PY_PATTERNS = (
    r"from {package}\.db\.base import Base",
    r"get_settings.*DATABASE_URL",
    r"async_engine_from_config",
    r"^def run_migrations_offline\(\)",
    r"^def do_run_migrations\(connection",
    r"^async def run_async_migrations\(\)",
    r"^def run_migrations_online\(\)",
)


def check_layout(service: Service) -> None:
    """env.py in the shape of Alembic's async template; every module small."""
    env_py = (service.path / "alembic/env.py").read_text()
    for pattern in ENV_PY_PATTERNS:
        assert re.search(pattern.format(package=service.package), env_py, re.M), pattern
    assert len(env_py.splitlines()) <= 110
    for path in service.path.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path


def check_deploy_files(service: Service, answers: dict[str, Any]) -> None:
    """The image and compose files: lint- and schema-clean, and right for the answers."""
    root, package, web = service.path, service.package, answers["web"]
    assert (root / package / "infra/migrate.py").is_file() and (root / ".dockerignore").is_file()
    assert (root / package / "infra/healthcheck.py").exists() == (web == "fastapi")
    dockerfile = root / "Dockerfile"
    lint = service.run(Path(sys.executable).with_name("hadolint"), "--no-color", dockerfile)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, ""), lint.stdout
    steps = instructions(dockerfile)
    runs = "\n".join(arguments for name, arguments in steps if name == "RUN")
    copies = {arguments for name, arguments in steps if name == "COPY"}
    # Dependencies from the lock file alone, without the dev group.
    if answers["package_manager"] == "uv":
        assert "uv sync --frozen --no-dev" in runs and "pyproject.toml uv.lock ./" in copies
    else:
        assert "poetry install --only main" in runs
        assert "pyproject.toml poetry.lock poetry.toml ./" in copies
    # Base images pinned by tag; both Python stages on the one the answers chose.
    assert ("ARG", f"PYTHON_IMAGE=python:{answers['python_version']}-slim-trixie") in steps
    for name, arguments in steps:
        image = arguments.split()[0]
        assert (
            name != "FROM" or image == "${PYTHON_IMAGE}" or re.fullmatch(r"[\w./-]+:[\w.-]+", image)
        )
    user = last(dockerfile, "USER")
    assert user.isdigit() and int(user) != 0, user
    command = exec_form(last(dockerfile, "CMD"))
    has_health = any(name == "HEALTHCHECK" for name, _ in steps)
    if web == "fastapi":
        assert command[:2] == ["uvicorn", f"{package}.main:app"] and has_health
    else:
        assert command == ["python", "-m", f"{package}.infra.migrate"] and not has_health
    ignored = (root / ".dockerignore").read_text().splitlines()
    assert {".env", ".devdb/", ".venv/", "tests/"} <= set(ignored)

    compose = root / "compose.yaml"
    schema = "vendor.compose-spec"
    service.ok(
        service.run(sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, compose)
    )
    services = yaml.safe_load(compose.read_text())["services"]
    assert set(services) == {"db", "migrate", "post-deploy"} | (
        {"app"} if web == "fastapi" else set()
    )
    step = ["python", "-m", f"{package}.infra.migrate"]
    assert services["migrate"]["command"] == [*step, "pre-deploy"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    # The post-deploy revisions once the new release serves (or after the pre-deploy ones).
    assert services["post-deploy"]["command"] == [*step, "post-deploy"]
    assert services["post-deploy"]["depends_on"] == (
        {"app": {"condition": "service_healthy"}}
        if web == "fastapi"
        else {"migrate": {"condition": "service_completed_successfully"}}
    )
    if web == "fastapi":
        assert services["app"]["build"] == "." and "command" not in services["app"]
        assert services["app"]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }


def test_uncommon_answers_do_not_leak_between_renders(
    copier_template: Path, tmp_path: Path
) -> None:
    """No author: pyproject has no authors entry and stays valid TOML."""
    root = render(copier_template, tmp_path / "anon", author_name="")
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert "authors" not in project
