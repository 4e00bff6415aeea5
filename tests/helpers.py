"""Helpers shared by the template's tests: rendering, SQL, and a rendered service."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from copier import run_copy
from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parent.parent
# Jinja that survived rendering. `${{` is GitHub Actions syntax, `${` is Mako.
LEFTOVER_JINJA = re.compile(r"(?<!\$)\{\{|\{%|\{#|%\}|#\}")
# Variables that would leak the developer's own set-up into a rendered service.
# PYTHONDONTWRITEBYTECODE too: without .pyc files every `alembic` call recompiles
# SQLAlchemy and alembic from source (about 0.5 s a call on 2 cores).
_SCRUBBED_ENV = (
    "DATABASE_URL",
    "TEST_DATABASE_URL",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONDONTWRITEBYTECODE",
)


def load_fixup(name: str) -> ModuleType:
    """A script of update_fixups/ (copier's `_migrations`), as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "update_fixups" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(template: Path, dst: Path, **answers: Any) -> Path:
    run_copy(
        str(template),
        dst,
        data=answers,
        defaults=True,
        unsafe=True,  # the template loads its own Jinja extensions
        vcs_ref="HEAD",
        quiet=True,
    )
    return dst


def files_of(root: Path) -> list[Path]:
    """What a render holds. Not bytecode: copier never renders it (copier.yml's
    _exclude), but tests that run a shared render's code leave it behind."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts
    )


def assert_clean_render(root: Path) -> None:
    """No Jinja left, no `.jinja` file names, no trailing whitespace anywhere."""
    for path in files_of(root):
        name = path.relative_to(root)
        assert not path.name.endswith(".jinja"), name
        text = path.read_text()
        assert not LEFTOVER_JINJA.search(text), f"unrendered Jinja in {name}"
        for number, line in enumerate(text.splitlines(), 1):
            assert line == line.rstrip(), f"trailing whitespace: {name}:{number}"


def one_line_failure(
    result: subprocess.CompletedProcess[str],
    *needles: str,
    secrets: tuple[str, ...] = (),
    progress: bool = False,
) -> str:
    """Failed, said so in a single `FAILED:` line holding `needles`, leaked no secret.

    `progress`: Alembic's INFO lines (revisions it began) may come beside that line.
    """
    assert result.returncode != 0
    output = result.stdout + result.stderr
    lines = [
        line
        for line in output.splitlines()
        if line.strip() and not (progress and line.startswith("INFO  [alembic."))
    ]
    assert len(lines) == 1, f"expected one line, got:\n{output}"
    assert lines[0].startswith("FAILED: "), output
    for needle in needles:
        assert needle in lines[0], output
    for secret in secrets:
        assert secret not in output and quote(secret, safe="") not in output
    return lines[0]


@dataclass
class Service:
    """A rendered project, and the commands a user runs in it."""

    path: Path
    package: str = "app"

    def env(self, database_url: URL | str | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        # A nested pytest prunes old numbered dirs under the shared temp root, the
        # outer run's PostgreSQL data included: give it a root of its own.
        temp_root = self.path.parent / "pytest-tmp"
        temp_root.mkdir(exist_ok=True)
        env["PYTEST_DEBUG_TEMPROOT"] = str(temp_root)
        # The service's suite runs without this environment's plugins (pytest-copier...).
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        if database_url is not None:
            env["DATABASE_URL"] = (
                database_url.render_as_string(hide_password=False)
                if isinstance(database_url, URL)
                else database_url
            )
        return {**env, **extra}

    def run(
        self,
        *args: str | Path,
        database_url: URL | str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(arg) for arg in args],
            cwd=self.path,
            env=env if env is not None else self.env(database_url),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    def alembic(
        self, *args: str, database_url: URL | str | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """The real `alembic` command line, with the test environment's interpreter."""
        return self.run(sys.executable, "-m", "alembic", *args, database_url=database_url, **kwargs)

    def ok(self, result: subprocess.CompletedProcess[str]) -> str:
        assert result.returncode == 0, f"{result.args} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    def pytest(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """The service's own test suite."""
        return self.run(
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, **kwargs
        )

    def write(self, relative: str, content: str) -> Path:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return target

    def add_model(self, module: str, source: str) -> None:
        """Add a model module and register it, as the service's README says."""
        self.write(f"{self.package}/models/{module}.py", source.format(package=self.package))
        registry = self.path / self.package / "models" / "__init__.py"
        prefix = f"from {self.package}.models."
        imports = [line for line in registry.read_text().splitlines() if line.startswith(prefix)]
        names = re.findall(r"^class (\w+)\(", source, flags=re.MULTILINE)
        imports = sorted({*imports, f"{prefix}{module} import {', '.join(names)}"})
        exported = sorted(
            name for line in imports for name in line.split(" import ")[1].split(", ")
        )
        registry.write_text(
            '"""Model registry."""\n\n'
            + "\n".join(imports)
            + f"\n\n__all__ = {exported!r}\n".replace("'", '"')
        )

    def autogenerate(self, database_url: URL, message: str) -> Path:
        """`alembic revision --autogenerate`; returns the one new revision file."""
        before = set(self.revisions())
        if before:  # autogenerate compares with a database at head (FastAPI renders: `item`)
            self.ok(self.alembic("upgrade", "head", database_url=database_url))
        self.ok(
            self.alembic("revision", "--autogenerate", "-m", message, database_url=database_url)
        )
        [revision] = set(self.revisions()) - before
        return revision

    def add_book_revision(self, database_url: URL) -> Path:
        """The book model, registered, and its autogenerated revision (returned)."""
        self.add_model("book", BOOK_MODEL)
        return self.autogenerate(database_url, "add book")

    def revisions(self) -> list[Path]:
        return sorted((self.path / "alembic" / "versions").glob("*.py"))

    def write_revision(
        self,
        revision: str,
        down: str | tuple[str, ...] | None,
        upgrade: str,
        phase: str | None = None,
    ) -> Path:
        """A revision file as a user would write one (its downgrade does nothing).

        Comment lines at the start of `upgrade` go above it (squawk acknowledgements);
        `phase` is its `deploy_phase` (none: the line is left out, as in old revisions).
        """
        lines = textwrap.dedent(upgrade).strip().splitlines()
        comments = [line for line in lines if line.startswith("#")]
        body = textwrap.indent("\n".join(line for line in lines if line not in comments), "    ")
        return self.write(
            f"alembic/versions/{revision}.py",
            f'"""{revision}"""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
            f"revision = {revision!r}\ndown_revision = {down!r}\n"
            "branch_labels = None\ndepends_on = None\n"
            + (f'deploy_phase = "{phase}"\n' if phase else "")
            + "\n"
            + "".join(f"{comment}\n" for comment in comments)
            + f"\ndef upgrade() -> None:\n{body}\n\n\ndef downgrade() -> None:\n    pass\n",
        )

    def concurrently(self, commands: list[list[str]], env: dict[str, str]) -> list[tuple[int, str]]:
        """The commands started at once; (exit code, output) of each, bounded in time."""
        runners = [
            subprocess.Popen(
                command,
                cwd=self.path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for command in commands
        ]
        try:
            outputs = [runner.communicate(timeout=120)[0] for runner in runners]
        finally:
            for runner in runners:
                runner.kill()  # no-op for those that ended
        return [
            (runner.returncode, output) for runner, output in zip(runners, outputs, strict=True)
        ]


BOOK_MODEL = """\
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from {package}.db.base import Base


class Book(Base):
    __tablename__ = "book"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
"""
