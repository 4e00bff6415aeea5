"""Autogenerate through the real `alembic` command line on a real PostgreSQL: it sees
every kind of change a model can make, names constraints by the naming convention,
writes revisions that go up, come back down to the exact schema they started from,
and pass the service's own linters; and it refuses to do harm.

(A new table is covered in test_alembic_cli.py.)
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import Service, sql, table_names
from sqlalchemy.engine import URL

HEADER = """\
from sqlalchemy import BigInteger, Enum, ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from {package}.db.base import Base


class Author(Base):
    __tablename__ = "author"

    id: Mapped[int] = mapped_column(primary_key=True)
"""


def models(*book_columns: str, extra: str = "") -> str:
    """The `author` table, a `book` table with these column lines, and `extra` classes."""
    source = HEADER
    if book_columns:
        source += (
            '\n\nclass Book(Base):\n    __tablename__ = "book"\n\n'
            "    id: Mapped[int] = mapped_column(primary_key=True)\n"
            + "".join(f"    {line}\n" for line in book_columns)
        )
    return source + extra


TITLE_50 = "title: Mapped[str] = mapped_column(String(50))"
TITLE_200 = "title: Mapped[str] = mapped_column(String(200))"
STATUS = 'Enum("draft", "published", name="book_status")'
SHELF = f"""

class Shelf(Base):
    __tablename__ = "shelf"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column({STATUS})
"""

Schema = dict[str, set[tuple[Any, ...]]]


def schema(url: URL) -> Schema:
    """What the public schema holds: columns, constraints, indexes and ENUM types."""
    columns, constraints, indexes, enums = sql(
        url,
        "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,"
        " column_default FROM information_schema.columns WHERE table_schema = 'public'",
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)"
        " FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid"
        " WHERE t.typnamespace = 'public'::regnamespace GROUP BY t.typname",
    )
    return {
        "columns": {tuple(row) for row in columns},
        "constraints": {tuple(row) for row in constraints},
        "indexes": {tuple(row) for row in indexes},
        "enums": {tuple(row) for row in enums},
    }


def autogenerate(service: Service, url: URL, message: str) -> str:
    """`alembic revision --autogenerate`; returns the new revision file's source."""
    return service.autogenerate(url, message).read_text()


def halves(source: str) -> tuple[str, str]:
    upgrade, downgrade = source.split("\ndef downgrade() -> None:")
    return upgrade.split("\ndef upgrade() -> None:")[1], downgrade


def assert_in_sync(service: Service, url: URL) -> None:
    assert "No new upgrade operations detected" in service.ok(
        service.alembic("check", database_url=url)
    )


@dataclass
class Change:
    before: str
    after: str
    upgrade: list[str]  # what the generated upgrade() must contain
    downgrade: list[str]  # and its downgrade()
    applied: Schema = field(default_factory=dict)  # rows schema() must show once upgraded
    imports: list[str] = field(default_factory=list)  # lines above upgrade()


CHANGES = {
    "add_column": Change(
        before=models(TITLE_50),
        after=models(TITLE_50, "pages: Mapped[int | None]"),
        upgrade=['op.add_column("book", sa.Column("pages", sa.Integer(), nullable=True))'],
        downgrade=['op.drop_column("book", "pages")'],
        applied={"columns": {("book", "pages", "integer", None, "YES", None)}},
    ),
    "drop_column": Change(
        before=models(TITLE_50, "subtitle: Mapped[str | None] = mapped_column(String(80))"),
        after=models(TITLE_50),
        upgrade=['op.drop_column("book", "subtitle")'],
        downgrade=['"subtitle", sa.VARCHAR(length=80), autoincrement=False, nullable=True'],
    ),
    "string_length": Change(
        before=models(TITLE_50),
        after=models(TITLE_200),
        upgrade=["existing_type=sa.VARCHAR(length=50)", "type_=sa.String(length=200)"],
        downgrade=["existing_type=sa.String(length=200)", "type_=sa.VARCHAR(length=50)"],
        applied={"columns": {("book", "title", "character varying", 200, "NO", None)}},
    ),
    "integer_to_bigint": Change(
        before=models("copies: Mapped[int] = mapped_column(Integer)"),
        after=models("copies: Mapped[int] = mapped_column(BigInteger)"),
        upgrade=["existing_type=sa.INTEGER()", "type_=sa.BigInteger()"],
        downgrade=["existing_type=sa.BigInteger()", "type_=sa.INTEGER()"],
        applied={"columns": {("book", "copies", "bigint", None, "NO", None)}},
    ),
    "nullability": Change(
        before=models("title: Mapped[str | None] = mapped_column(String(50))"),
        after=models(TITLE_50),
        upgrade=["existing_type=sa.VARCHAR(length=50)", "nullable=False"],
        downgrade=["nullable=True"],
        applied={"columns": {("book", "title", "character varying", 50, "NO", None)}},
    ),
    "server_default": Change(
        before=models("copies: Mapped[int] = mapped_column(server_default=text('0'))"),
        after=models("copies: Mapped[int] = mapped_column(server_default=text('1'))"),
        upgrade=['server_default=sa.text("1")'],
        downgrade=['server_default=sa.text("0")'],
        applied={"columns": {("book", "copies", "integer", None, "NO", "1")}},
    ),
    "index": Change(
        before=models(TITLE_50),
        after=models("title: Mapped[str] = mapped_column(String(50), index=True)"),
        upgrade=['op.create_index(op.f("ix_book_title"), "book", ["title"], unique=False)'],
        downgrade=['op.drop_index(op.f("ix_book_title"), table_name="book")'],
        applied={"indexes": {("book", "ix_book_title")}},
    ),
    "unique_constraint": Change(
        before=models(TITLE_50),
        after=models("title: Mapped[str] = mapped_column(String(50), unique=True)"),
        upgrade=['op.create_unique_constraint(op.f("uq_book_title"), "book", ["title"])'],
        downgrade=['op.drop_constraint(op.f("uq_book_title"), "book", type_="unique")'],
        applied={"constraints": {("book", "uq_book_title", "UNIQUE (title)")}},
    ),
    "foreign_key": Change(
        before=models("author_id: Mapped[int]"),
        after=models('author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))'),
        upgrade=[
            'op.create_foreign_key(op.f("fk_book_author_id_author"), "book", "author",'
            ' ["author_id"], ["id"])'
        ],
        downgrade=[
            'op.drop_constraint(op.f("fk_book_author_id_author"), "book", type_="foreignkey")'
        ],
        applied={
            "constraints": {
                (
                    "book",
                    "fk_book_author_id_author",
                    "FOREIGN KEY (author_id) REFERENCES author(id)",
                )
            }
        },
    ),
    # Plain Alembic creates the type with the table or column but never drops it in
    # the downgrade (alembic#89, #886, #1612): alembic-postgresql-enum, loaded by
    # env.py, adds the drop.
    "enum_column": Change(
        before=models(TITLE_50),
        after=models(TITLE_50, f"status: Mapped[str] = mapped_column({STATUS})"),
        upgrade=['sa.Enum("draft", "published", name="book_status").create(op.get_bind())'],
        downgrade=['sa.Enum("draft", "published", name="book_status").drop(op.get_bind())'],
        applied={"enums": {("book_status", "draft,published")}},
    ),
    # Not detected by plain Alembic at all.
    "enum_value_added": Change(
        before=models(f"status: Mapped[str] = mapped_column({STATUS})"),
        after=models(
            'status: Mapped[str] = mapped_column(Enum("draft", "published", "archived",'
            ' name="book_status"))'
        ),
        upgrade=["op.add_enum_value(  # type: ignore[attr-defined]", 'new_value="archived"'],
        # `upgrade` no longer imports the library; a revision that uses its ops does.
        imports=["import alembic_postgresql_enum  # noqa: F401"],
        downgrade=[
            "op.sync_enum_values(  # type: ignore[attr-defined]",
            'new_values=["draft", "published"]',
        ],
        applied={"enums": {("book_status", "draft,published,archived")}},
    ),
    "enum_in_new_table": Change(
        before=models(),
        after=models(extra=SHELF),
        upgrade=['sa.Enum("draft", "published", name="book_status").create(op.get_bind())'],
        downgrade=['sa.Enum("draft", "published", name="book_status").drop(op.get_bind())'],
        applied={"enums": {("book_status", "draft,published")}},
    ),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_change_is_autogenerated_applied_and_reverted(
    change: Change, service: Service, database_url: URL
) -> None:
    service.add_model("book", change.before)
    autogenerate(service, database_url, "before")
    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    start = schema(database_url)

    service.add_model("book", change.after)
    source = autogenerate(service, database_url, "change")
    upgrade, downgrade = halves(source)
    for expected in change.imports:
        assert expected in source.split("\ndef upgrade")[0], source
    for expected in change.upgrade:
        assert expected in upgrade, upgrade
    for expected in change.downgrade:
        assert expected in downgrade, downgrade

    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    applied = schema(database_url)
    assert applied != start
    for kind, rows in change.applied.items():
        assert rows <= applied[kind], applied[kind]
    assert_in_sync(service, database_url)

    service.ok(service.alembic("downgrade", "-1", database_url=database_url))
    assert schema(database_url) == start  # enum types included: nothing left behind


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


def test_generated_revisions_pass_ruff_and_mypy_strict(service: Service, database_url: URL) -> None:
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
    assert "Success" in service.ok(service.run(python, "-m", "mypy", timeout=300))

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
    assert upgrade.returncode != 0
    assert "FAILED: Multiple head revisions are present for given argument 'head'" in (
        upgrade.stdout + upgrade.stderr
    )

    env = service.env(TEST_DATABASE_URL=postgres_server.render_as_string(hide_password=False))
    result = service.pytest(env=env)
    assert result.returncode == 1, result.stdout
    summary = "FAILED tests/test_migrations.py::test_there_is_at_most_one_head"
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
