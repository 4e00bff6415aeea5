"""Copier migration to v0.3.0: the migration lint starts after the revisions a service has.

v0.3.0 lints every revision's SQL with squawk (tests/migration_lint.py). Revisions
written before were applied long ago; linting them now would fail the suite on
history nobody can change. As strong_migrations' `start_after` does, this records
the service's current head revision(s) in pyproject.toml; the lint skips them and
their ancestors. Pure and offline: reads alembic/versions, appends to pyproject.toml.

Run by copier in the service's directory: python v0_3_0_lint_start_after.py
"""

from __future__ import annotations

import ast
import sys
from contextlib import suppress
from pathlib import Path

VERSIONS = Path("alembic/versions")
PYPROJECT = Path("pyproject.toml")
TABLE = "[tool.migration-lint]"


def revision_ids(source: str) -> tuple[str | None, set[str]]:
    """(revision, down revisions) as a revision file assigns them."""
    values: dict[str, object] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            with suppress(ValueError):
                values[target.id] = ast.literal_eval(value) if value is not None else None
    revision, down = values.get("revision"), values.get("down_revision")
    downs = {down} if isinstance(down, str) else set(down) if isinstance(down, tuple) else set()
    return (revision if isinstance(revision, str) else None), downs


def heads(project: Path) -> list[str]:
    revisions, parents = set(), set()
    for path in (project / VERSIONS).rglob("*.py"):
        revision, downs = revision_ids(path.read_text())
        if revision:
            revisions.add(revision)
            parents |= downs
    return sorted(revisions - parents)


def migrate(project: Path) -> str | None:
    pyproject = project / PYPROJECT
    found = heads(project)
    if not found or not pyproject.exists() or TABLE in pyproject.read_text():
        return None
    value = f'"{found[0]}"' if len(found) == 1 else "[" + ", ".join(f'"{h}"' for h in found) + "]"
    with pyproject.open("a") as out:
        out.write(
            f"\n{TABLE}\n"
            "# Revisions up to this one were applied before squawk linted this service\n"
            "# (copier update to v0.3.0): tests/migration_lint.py skips them.\n"
            f"start_after = {value}\n"
        )
    return (
        f"pyproject.toml: the migration lint starts after {', '.join(found)} "
        "([tool.migration-lint] start_after); earlier revisions are not linted"
    )


def main() -> int:
    message = migrate(Path.cwd())
    if message:
        print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
