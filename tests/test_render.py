"""Rendering: answers, validators, and a render that is clean as it comes out."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, assert_clean_render, files_of, render
from pathspec import PathSpec

NON_DEFAULT = {
    "project_name": "Book Store",
    "package_name": "bookstore",
    "python_version": "3.13",
    "postgres_version": 16,
}


@pytest.fixture(scope="module")
def bookstore(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(
        copier_template, tmp_path_factory.mktemp("bookstore") / "book-store", **NON_DEFAULT
    )


def test_defaults_render_an_app_package(default_render: Path) -> None:
    answers = yaml.safe_load((default_render / ".copier-answers.yml").read_text())
    assert answers["package_name"] == "app"
    assert answers["project_slug"] == "my-service"
    assert answers["dev_database_name"] == "my_service_dev"
    assert answers["_commit"]
    for path in [
        "app/core/config.py",
        "app/db/base.py",
        "app/infra/engines.py",
        "alembic.ini",
        "alembic/env.py",
        "alembic/script.py.mako",
        "alembic/versions/.gitkeep",
        "compose.yaml",
        ".env.example",
        "tests/infra/test_migrations.py",
    ]:
        assert (default_render / path).is_file(), path
    env_py = (default_render / "alembic/env.py").read_text()
    assert "from app.db.base import Base" in env_py
    assert "target_metadata = Base.metadata" in env_py
    assert ".env" in (default_render / ".gitignore").read_text().splitlines()


def test_non_default_answers_reach_every_file(bookstore: Path) -> None:
    assert (bookstore / "bookstore/db/base.py").is_file()
    assert not (bookstore / "app").exists()
    assert "from bookstore.db.base import Base" in (bookstore / "alembic/env.py").read_text()
    pyproject = (bookstore / "pyproject.toml").read_text()
    assert 'name = "book-store"' in pyproject
    assert 'requires-python = ">=3.13"' in pyproject
    assert 'target-version = "py313"' in pyproject
    compose = yaml.safe_load((bookstore / "compose.yaml").read_text())
    db = compose["services"]["db"]
    assert db["image"] == "postgres:16"
    assert db["environment"]["POSTGRES_DB"] == "book_store_dev"
    # PostgreSQL < 18 images keep their data one level deeper.
    assert db["volumes"] == ["db-data:/var/lib/postgresql/data"]
    assert "book_store_dev" in (bookstore / ".env.example").read_text()


def test_ownership_is_a_folder(default_render: Path) -> None:
    """In the package and in tests/, `copier update` overwrites exactly what is in infra/:
    every other file there is skipped once it exists (the user's)."""
    patterns = yaml.safe_load((ROOT / "copier.yml").read_text())["_skip_if_exists"]
    # The pattern style copier itself uses with pathspec >= 1.0.
    users = PathSpec.from_lines(
        "gitignore", [p.replace("{{ package_name }}", "app") for p in patterns]
    )
    owned = {"app": set(), "tests": set()}
    for path in files_of(default_render):
        relative = path.relative_to(default_render)
        if relative.parts[0] in owned:
            assert users.match_file(str(relative)) == ("infra" not in relative.parts), relative
            owned[relative.parts[0]].add(relative.parts[1])
    assert "infra" in owned["app"] and "infra" in owned["tests"]
    for folder in ("app/infra", "tests/infra"):
        assert "Template-owned" in (default_render / folder / "__init__.py").read_text()


def test_postgres_18_volume_path(default_render: Path) -> None:
    db = yaml.safe_load((default_render / "compose.yaml").read_text())["services"]["db"]
    assert db["image"] == "postgres:18"
    assert db["volumes"] == ["db-data:/var/lib/postgresql"]


@pytest.mark.parametrize("fixture", ["default_render", "bookstore"])
def test_no_unrendered_jinja_and_no_trailing_whitespace(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    assert_clean_render(request.getfixturevalue(fixture))


def test_rendering_twice_gives_identical_files(
    copier_template: Path, default_render: Path, tmp_path: Path
) -> None:
    again = render(copier_template, tmp_path / "again")
    first = {p.relative_to(default_render): p.read_bytes() for p in files_of(default_render)}
    second = {p.relative_to(again): p.read_bytes() for p in files_of(again)}
    assert first == second


@pytest.mark.parametrize(
    ("question", "value", "message"),
    [
        ("package_name", "class", "'class' is a Python keyword"),
        ("package_name", "1app", "'1app' is not a valid package name"),
        ("package_name", "json", "'json' would shadow the module"),
        ("project_slug", "My Service", "'My Service' is not a valid project slug"),
        ("dev_database_name", "my-db", "'my-db' is not a valid PostgreSQL database name"),
        ("dev_database_name", "d" * 64, "PostgreSQL names are at most 63"),
        ("author_email", "nobody", "'nobody' is not an e-mail address"),
        ("project_name", "  ", "The project name must not be empty"),
    ],
)
def test_invalid_answers_are_refused_with_the_validators_message(
    copier_template: Path, tmp_path: Path, question: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        render(copier_template, tmp_path / "refused", **{question: value})
    assert not (tmp_path / "refused" / "alembic").exists()


@pytest.mark.parametrize(
    ("question", "value"), [("python_version", "3.10"), ("postgres_version", 14)]
)
def test_answers_outside_the_choices_are_refused(
    copier_template: Path, tmp_path: Path, question: str, value: object
) -> None:
    with pytest.raises(ValueError, match="Invalid choice"):
        render(copier_template, tmp_path / "refused", **{question: value})


def test_cli_refuses_an_invalid_answer_with_a_readable_message(
    copier_template: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "copier",
            "copy",
            "--trust",
            "--defaults",
            "--vcs-ref",
            "HEAD",
            "-d",
            "package_name=class",
            str(copier_template),
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert (
        "'class' is a Python keyword and cannot be a package name." in result.stdout + result.stderr
    )
