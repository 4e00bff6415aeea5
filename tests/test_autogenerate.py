"""Autogenerate through the real `alembic` command line on a real PostgreSQL: it sees
every kind of change a model can make, names constraints by the naming convention,
writes revisions that go up and come back down to the exact schema they started from.

(A new table is covered in test_alembic_cli.py; what autogenerate refuses, and the
linters its revisions pass, in test_autogenerate_guards.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from database import sql
from helpers import Service
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
