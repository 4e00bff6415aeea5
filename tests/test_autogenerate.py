"""Autogenerate through the real `alembic` command line on a real PostgreSQL: it sees
every kind of change a model can make, names constraints by the naming convention,
writes revisions that go up and come back down to the exact schema they started from.

Every change is made at once, each on tables of its own (`book_c01`, ...): one
`before` revision, one revision with all twelve changes, applied, checked and
reverted once (eight `alembic` processes, not ninety-six); each test then reads its
own statements and tables from that run.

(A new table is covered in test_alembic_cli.py; what autogenerate refuses, and the
linters its revisions pass, in test_autogenerate_guards.py.)
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from database import Schema, fresh_database, schema
from helpers import Service
from sqlalchemy.engine import URL

# The module's tests share one run (the `run` fixture): on one worker.
pytestmark = pytest.mark.xdist_group("autogenerate")

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


def autogenerate(service: Service, url: URL, message: str) -> str:
    """`alembic revision --autogenerate`; returns the new revision file's source."""
    return service.autogenerate(url, message).read_text()


def assert_in_sync(service: Service, url: URL) -> None:
    assert "No new upgrade operations detected" in service.ok(
        service.alembic("check", database_url=url)
    )


def halves(source: str) -> tuple[str, str]:
    upgrade, downgrade = source.split("\ndef downgrade() -> None:")
    return upgrade.split("\ndef upgrade() -> None:")[1], downgrade


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


# Each change's names get its tag (`book` -> `book_c01`, `ix_book_title` ->
# `ix_book_c01_title`), in its models and in what the test expects alike.
NAMES = re.compile(
    r"\b(fk_book_author_id_author|ix_book_title|uq_book_title|book_status"
    r"|author|book|shelf|Author|Book|Shelf)\b"
)


def tagged(text: str, tag: str) -> str:
    def rename(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "fk_book_author_id_author":
            return f"fk_book_{tag}_author_id_author_{tag}"
        if name.startswith(("ix_", "uq_")):
            return name.replace("book", f"book_{tag}")
        return f"{name}_{tag}"

    return NAMES.sub(rename, text)


TAGS = {key: f"c{number:02}" for number, key in enumerate(CHANGES, start=1)}


def statements(body: str, tag: str) -> str:
    """The statements of an upgrade() or downgrade() body that touch the tag's names."""
    found: list[list[str]] = []
    for line in body.splitlines():
        if re.match(r"    [^ )\]]", line):
            found.append([line])
        elif found:
            found[-1].append(line)
    return "\n".join("\n".join(lines) for lines in found if f"_{tag}" in "\n".join(lines))


def flat(code: str) -> str:
    """Code without its layout: ruff wraps the longer tagged lines differently."""
    return re.sub(r",\)", ")", re.sub(r"\s+", "", code))


def own(whole: Schema, tag: str) -> Schema:
    """The rows of the tag's tables and ENUM types."""
    return {
        kind: {row for row in rows if row[0].endswith(f"_{tag}")} for kind, rows in whole.items()
    }


@dataclass
class Run:
    source: str  # the revision with every change
    start: Schema  # the schema at the `before` revision
    applied: Schema  # with the changes applied
    reverted: Schema  # after `downgrade -1`


@pytest.fixture(scope="module")
def run(
    default_render: Path, postgres_server: URL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("autogenerate")
    service = Service(Path(shutil.copytree(default_render, folder / "my-service")))
    with fresh_database(postgres_server) as url:
        for key, change in CHANGES.items():
            service.add_model(TAGS[key], tagged(change.before, TAGS[key]))
        service.autogenerate(url, "before")
        service.ok(service.alembic("upgrade", "head", database_url=url))
        start = schema(url)
        for key, change in CHANGES.items():
            service.add_model(TAGS[key], tagged(change.after, TAGS[key]))
        source = autogenerate(service, url, "change")
        service.ok(service.alembic("upgrade", "head", database_url=url))
        applied = schema(url)
        assert_in_sync(service, url)
        service.ok(service.alembic("downgrade", "-1", database_url=url))
        yield Run(source, start, applied, schema(url))


@pytest.mark.parametrize("key", CHANGES)
def test_change_is_autogenerated_applied_and_reverted(key: str, run: Run) -> None:
    change, tag = CHANGES[key], TAGS[key]
    upgrade, downgrade = (statements(half, tag) for half in halves(run.source))
    for expected in change.imports:
        assert expected in run.source.split("\ndef upgrade")[0], run.source
    for expected in change.upgrade:
        assert flat(tagged(expected, tag)) in flat(upgrade), upgrade
    for expected in change.downgrade:
        assert flat(tagged(expected, tag)) in flat(downgrade), downgrade

    start, applied = own(run.start, tag), own(run.applied, tag)
    assert applied != start
    for kind, rows in change.applied.items():
        assert {tagged_row(row, tag) for row in rows} <= applied[kind], applied[kind]
    assert own(run.reverted, tag) == start  # enum types included: nothing left behind


def tagged_row(row: tuple[Any, ...], tag: str) -> tuple[Any, ...]:
    return tuple(tagged(cell, tag) if isinstance(cell, str) else cell for cell in row)


def test_all_changes_together_revert_exactly(run: Run) -> None:
    assert run.reverted == run.start
    assert run.applied != run.start
