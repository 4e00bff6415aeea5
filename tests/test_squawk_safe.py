"""What squawk lets through in a rendered service, and the one thing only it sees.

- the manual's safe spellings (docs/migrations.md) pass the lint and run on a real PostgreSQL;
- revisions autogenerate writes for new tables pass, the template's column types even
  with every rule on; the `drop_table` autogenerate writes for a model missing from the
  registry fails the service's suite on squawk alone (`alembic check` cannot see it).
"""

from __future__ import annotations

import re
import sys

import pytest
from database import sql
from helpers import Service
from sqlalchemy.engine import URL
from test_squawk import LINT, findings

TABLES = """
op.create_table(
    "author",
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
)
op.create_table(
    "book",
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("author_id", sa.BigInteger(), nullable=True),
)
"""


def readme_recipes(service: Service) -> list[str]:
    """The revision bodies in docs/migrations.md's "Zero-downtime revisions" section."""
    manual = (service.path / "docs/migrations.md").read_text()
    section = manual.split("### Zero-downtime revisions\n")[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return [block for block in blocks if "def upgrade() -> None:" in block]


def test_readme_recipes_pass_the_lint_and_run(service: Service, database_url: URL) -> None:
    service.write_revision("tables", None, TABLES)
    recipes = readme_recipes(service)
    assert len(recipes) == 8
    down = "tables"
    for number, recipe in enumerate(recipes, 1):
        name = f"recipe_{number}"
        imports = "import sqlalchemy as sa\n" if "sa." in recipe else ""
        service.write(
            f"alembic/versions/{name}.py",
            f'"""{name}"""\n\n{imports}from alembic import op\n\n'
            f'revision = "{name}"\ndown_revision = "{down}"\n'
            "branch_labels = None\ndepends_on = None\n\n\n"
            f"{recipe}\n\ndef downgrade() -> None:\n    pass\n",
        )
        down = name

    result = service.run(*LINT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"squawk: no problems in {len(recipes) + 1} revision(s)\n"
    recipe_files = [str(path) for path in service.revisions() if path.stem.startswith("recipe")]
    service.ok(service.run(sys.executable, "-m", "ruff", "check", *recipe_files))
    service.ok(service.run(sys.executable, "-m", "ruff", "format", "--check", *recipe_files))

    service.ok(service.alembic("upgrade", "tables", database_url=database_url))
    sql(
        database_url,
        "INSERT INTO author DEFAULT VALUES",
        "INSERT INTO book (title, author_id) VALUES ('Dune', 1), ('Emma', 1)",
    )
    # A concurrent build that failed (duplicates) leaves an INVALID index of that name.
    with pytest.raises(Exception, match="could not create unique index"):
        sql(database_url, "CREATE UNIQUE INDEX CONCURRENTLY ix_book_author_id ON book (author_id)")
    service.ok(service.alembic("upgrade", "head", database_url=database_url))

    index, foreign_key, columns = sql(
        database_url,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_book_author_id'::regclass",
        "SELECT convalidated FROM pg_constraint WHERE conname = 'fk_book_author_id_author'",
        "SELECT column_name, is_nullable FROM information_schema.columns"
        " WHERE table_name = 'book' ORDER BY column_name",
    )
    assert index == [(True,)]  # rebuilt, not the invalid leftover
    assert foreign_key == [(True,)]
    assert [tuple(row) for row in columns] == [
        ("author_id", "YES"),
        ("id", "NO"),
        ("isbn", "NO"),
        ("name", "YES"),
    ]
    assert sql(database_url, "SELECT name FROM book ORDER BY id")[0] == [("Dune",), ("Emma",)]


AUTHOR = """\
from sqlalchemy import func
from sqlalchemy.orm import Mapped, mapped_column

from {package}.db.base import Base, BigIntKey, TimestampTZ


class Author(Base):
    __tablename__ = "author"

    id: Mapped[BigIntKey]
    name: Mapped[str]
    born: Mapped[TimestampTZ | None]
    created_at: Mapped[TimestampTZ] = mapped_column(server_default=func.now())
"""
# SQLAlchemy's plain spellings: SERIAL key, VARCHAR(n), naive timestamp; and everything
# autogenerate makes with a new table: FK, ENUM type, index, unique constraint, default.
BOOK = """\
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column

from {package}.db.base import Base


class Book(Base):
    __tablename__ = "book"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
    isbn: Mapped[str] = mapped_column(String(20), index=True)
    copies: Mapped[int] = mapped_column(server_default=text("0"))
    author_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("author.id"))
    status: Mapped[str] = mapped_column(Enum("draft", "published", name="book_status"))
    printed: Mapped[datetime]
"""


def test_new_tables_pass_and_a_model_missing_from_the_registry_fails_on_squawk(
    service: Service, database_url: URL, postgres_server: URL
) -> None:
    service.add_model("author", AUTHOR)
    authors = service.autogenerate(database_url, "authors")
    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    service.add_model("book", BOOK)
    books = service.autogenerate(database_url, "books")
    service.ok(service.alembic("upgrade", "head", database_url=database_url))

    # The registry loses one import (a bad merge...): other models keep it non-empty.
    registry = service.path / service.package / "models" / "__init__.py"
    registry.write_text(
        '"""Model registry."""\n\n'
        f"from {service.package}.models.author import Author\n\n"
        '__all__ = ["Author"]\n'
    )
    dropped = service.autogenerate(database_url, "oops")
    assert 'op.drop_table("book")' in dropped.read_text()

    env = service.env(TEST_DATABASE_URL=postgres_server.render_as_string(hide_password=False))
    result = service.pytest(env=env)
    output = result.stdout
    assert result.returncode == 1, output
    # `alembic check`, upgrade, the stairway: all pass. Only squawk sees the drop.
    assert re.search(r"\b1 failed, \d+ passed", output), output
    assert (
        "FAILED tests/infra/test_migration_lint.py::test_every_revision_passes_squawk_and_the_pre_deploy_check"
        in output
    )
    found = findings(output)
    assert "ban-drop-table" in found[dropped.stem], output
    assert authors.stem not in found and books.stem not in found, output

    # Every rule on: the template's column types pass; SQLAlchemy's plain ones do not.
    service.write(".squawk.toml", 'pg_version = "18.0"\nexcluded_rules = []\n')
    result = service.run(*LINT, str(authors), str(books))
    assert result.returncode == 1
    assert findings(result.stdout) == {
        books.stem: {
            "prefer-bigint-over-int",
            "prefer-identity",
            "prefer-text-field",
            "prefer-timestamp-tz",
        }
    }, result.stdout
