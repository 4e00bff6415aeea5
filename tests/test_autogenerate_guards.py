"""Autogenerate refuses to do harm: an empty model registry, an in-sync schema, two
heads, ENUM types another tool owns; and what it writes passes the service's linters.

Through the real `alembic` command line on a real PostgreSQL.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from database import sql, table_names
from helpers import Service, one_line_failure
from sqlalchemy.engine import URL
from test_autogenerate import STATUS, assert_in_sync, autogenerate, models

# Every kind of object at once: a FK, an ENUM, an index, a unique constraint, a default.
CATALOGUE = models(
    "title: Mapped[str] = mapped_column(String(200), unique=True)",
    "isbn: Mapped[str] = mapped_column(String(20), index=True)",
    "copies: Mapped[int] = mapped_column(server_default=text('0'))",
    'author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))',
    f"status: Mapped[str] = mapped_column({STATUS})",
)
EMPTY_REGISTRY = '"""Model registry."""\n\n__all__: list[str] = []\n'
NOTHING_WRITTEN = "No schema changes detected; no revision file written."


def enum_types(url: URL) -> set[str]:
    rows = sql(url, "SELECT typname FROM pg_type WHERE typtype = 'e'")[0]
    return {row[0] for row in rows}


def test_empty_model_registry_is_refused_and_writes_nothing(
    service: Service, database_url: URL
) -> None:
    service.add_model("book", CATALOGUE)
    autogenerate(service, database_url, "catalogue")
    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    revisions = service.revisions()

    # The registry loses its imports (a linter's "unused import" fix, a bad merge...).
    service.write(f"{service.package}/models/__init__.py", EMPTY_REGISTRY)
    result = service.alembic("revision", "--autogenerate", "-m", "oops", database_url=database_url)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    [failure] = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert failure == (
        "FAILED: Base.metadata has no tables but the database has 2 (author, book): "
        "autogenerate would drop them all. Is every model imported in "
        f"{service.package}/models/__init__.py? Nothing was written."
    )
    assert service.revisions() == revisions
    assert table_names(database_url) == {"alembic_version", "author", "book"}


def test_in_sync_schema_gives_no_revision_and_a_clean_check(
    service: Service, database_url: URL
) -> None:
    # An empty registry on an empty database is not an accident: nothing to write.
    assert NOTHING_WRITTEN in service.ok(
        service.alembic("revision", "--autogenerate", "-m", "nothing", database_url=database_url)
    )
    assert service.revisions() == []

    service.add_model("book", CATALOGUE)
    autogenerate(service, database_url, "catalogue")
    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    revisions = service.revisions()

    # No false differences from the ENUM, the server default, the FK or the index...
    assert NOTHING_WRITTEN in service.ok(
        service.alembic("revision", "--autogenerate", "-m", "again", database_url=database_url)
    )
    assert service.revisions() == revisions
    # ...and the skip-empty hook leaves `alembic check` alone (it runs there too).
    assert_in_sync(service, database_url)


@pytest.mark.xdist_group("mypy-3.11")  # conftest's mypy_cache: the default Python version
def test_generated_revisions_pass_ruff_and_mypy_strict(
    service: Service, database_url: URL, mypy_cache: Path
) -> None:
    service.add_model("book", CATALOGUE)
    first = autogenerate(service, database_url, "catalogue")
    assert "postgresql.ENUM(" in first and "create_foreign_key" not in first
    service.ok(service.alembic("upgrade", "head", database_url=database_url))

    # Alterations: a second ENUM on an existing table, a wider and a dropped column, a FK.
    service.add_model(
        "book",
        models(
            "title: Mapped[str] = mapped_column(String(300), unique=True)",
            "copies: Mapped[int] = mapped_column(server_default=text('0'))",
            'author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))',
            'status: Mapped[str] = mapped_column(Enum("draft", "published", "archived",'
            ' name="book_status"))',
            'editor_id: Mapped[int | None] = mapped_column(ForeignKey("author.id"))',
            'format: Mapped[str] = mapped_column(Enum("paper", "ebook", name="book_format"))',
        ),
    )
    second = autogenerate(service, database_url, "alterations")
    for op in (
        "alter_column",
        "drop_index",
        "drop_column",
        "add_column",
        "create_foreign_key",
        "add_enum_value",  # alembic-postgresql-enum's: not in Alembic's type stubs
    ):
        assert f"op.{op}(" in second, second

    python = sys.executable
    service.ok(service.run(python, "-m", "ruff", "check", "alembic/versions"))
    service.ok(service.run(python, "-m", "ruff", "format", "--check", "alembic/versions"))
    # The rendered pyproject's [tool.mypy]: strict, alembic/ included.
    assert "Success" in service.ok(
        service.run(python, "-m", "mypy", "--cache-dir", mypy_cache / "3.11", timeout=300)
    )

    # Offline SQL too: the ENUM ops work without a database connection.
    offline = service.ok(service.alembic("upgrade", "head", "--sql"))
    assert "CREATE TYPE book_format AS ENUM ('paper', 'ebook')" in offline
    assert """ALTER TYPE "public"."book_status" ADD VALUE 'archived'""" in offline

    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    assert enum_types(database_url) == {"book_status", "book_format"}
    service.ok(service.alembic("downgrade", "base", database_url=database_url))
    assert enum_types(database_url) == set()
    assert table_names(database_url) == {"alembic_version"}


def test_two_heads_fail_the_service_suite_with_the_fix(
    service: Service, database_url: URL, postgres_server: URL
) -> None:
    # Two branches each added a revision on the same parent (here: on base).
    service.ok(service.alembic("revision", "-m", "first"))
    service.ok(service.alembic("revision", "-m", "second", "--head", "base", "--splice"))
    heads = sorted(re.findall(r"^(\w+) \(head\)$", service.ok(service.alembic("heads")), re.M))
    assert len(heads) == 2

    upgrade = service.alembic("upgrade", "head", database_url=database_url)
    line = one_line_failure(upgrade, "Multiple head revisions are present", progress=True)
    assert all(f"{head} (alembic/versions/" in line for head in heads), line
    assert "join them with `alembic merge heads -m merge`" in line, line

    env = service.env(TEST_DATABASE_URL=postgres_server.render_as_string(hide_password=False))
    result = service.pytest(env=env)
    assert result.returncode == 1, result.stdout
    summary = "FAILED tests/infra/test_migrations.py::test_there_is_at_most_one_head"
    assert summary in result.stdout, result.stdout
    # The failure line, and under CI=true also its untruncated copy in the summary.
    messages = [line for line in result.stdout.splitlines() if "AssertionError: several" in line]
    assert messages, result.stdout
    for message in messages:
        assert all(head in message for head in heads), message
        assert "merge them with `alembic merge heads`" in message


def test_enum_types_hidden_by_the_service_hook_are_left_alone(
    service: Service, database_url: URL
) -> None:
    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    sql(database_url, "CREATE TYPE legacy_mood AS ENUM ('ok', 'meh')")  # another tool's type
    hooks = service.path / service.package / "db" / "migration_hooks.py"
    rendered = hooks.read_text()
    before_hook = rendered.split("\n\ndef include_enum")[0]
    assert before_hook != rendered

    for hooks_source in (rendered, before_hook + "\n"):  # as rendered; a service made before it
        hooks.write_text(hooks_source)
        drift = service.alembic("check", database_url=database_url)
        assert drift.returncode != 0, drift.stdout
        assert "legacy_mood" in drift.stdout + drift.stderr
        assert "Traceback" not in drift.stderr

    hooks.write_text(
        before_hook + '\n\ndef include_enum(name: str) -> bool:\n    return name != "legacy_mood"\n'
    )
    assert_in_sync(service, database_url)
