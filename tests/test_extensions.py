"""Unit tests of the Jinja extensions copier.yml relies on."""

from __future__ import annotations

import sys

import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from extensions.context import derived_values  # noqa: E402
from extensions.naming import (  # noqa: E402
    package_name_problem,
    pg_identifier_problem,
    slug_problem,
    slugify,
)


@pytest.mark.parametrize(
    ("text", "slug"),
    [("My Service", "my-service"), ("  Books & Co. 2 ", "books-co-2"), ("API", "api")],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug
    assert slug_problem(slug) == ""


@pytest.mark.parametrize("slug", ["My-Service", "my_service", "-x", "a--b", ""])
def test_slug_problem_names_the_bad_slug(slug: str) -> None:
    assert f"'{slug}' is not a valid project slug" in slug_problem(slug)


@pytest.mark.parametrize("name", ["app", "bookstore", "_private", "svc2"])
def test_package_name_accepts_identifiers(name: str) -> None:
    assert package_name_problem(name) == ""


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("1app", "is not a valid package name"),
        ("my-app", "is not a valid package name"),
        ("App", "is not a valid package name"),
        ("class", "is a Python keyword"),
        ("match", "is a Python keyword"),
        ("json", "would shadow"),
        ("asyncio", "would shadow"),
        ("alembic", "would shadow"),
    ],
)
def test_package_name_problem_says_why(name: str, problem: str) -> None:
    assert problem in package_name_problem(name)


def test_pg_identifier_problem() -> None:
    assert pg_identifier_problem("bookstore_dev") == ""
    assert "not a valid PostgreSQL database name" in pg_identifier_problem("book-store")
    assert "not a valid PostgreSQL database name" in pg_identifier_problem("Books")
    assert "at most 63" in pg_identifier_problem("x" * 64)
    assert pg_identifier_problem("x" * 63) == ""


def test_derived_values_follow_the_answers() -> None:
    values = derived_values({"python_version": "3.13", "postgres_version": 16})
    assert values == {
        "python_requires": ">=3.13",
        "ruff_target": "py313",
        "postgres_image": "postgres:16",
    }


def test_derived_values_tolerate_missing_answers() -> None:
    # Copier calls the hook while questions are still being asked.
    assert derived_values({})["ruff_target"] == "py311"
