"""Copier migration to v0.3.0: revisions that call alembic-postgresql-enum's operations
import the library themselves.

Up to v0.2.0 alembic/env.py imported alembic-postgresql-enum on every command, which
is what registers `op.add_enum_value` and `op.sync_enum_values`. Since v0.3.0 only
autogenerate imports it (`upgrade` starts faster), and new revisions that need it
import it. This adds the import to older revisions that call those operations without
it, and names each file it changed. Pure and offline: reads and writes alembic/versions.

Run by copier in the service's directory: python v0_3_0_enum_import.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

VERSIONS = Path("alembic/versions")
CALLS = re.compile(r"\bop\.(add_enum_value|sync_enum_values)\(")
IMPORT = "import alembic_postgresql_enum  # noqa: F401  (registers op.sync_enum_values)"
# Where the import goes, so that ruff's import order stays satisfied.
BEFORE = ("import sqlalchemy", "from alembic import op")


def add_import(source: str) -> str | None:
    """The revision with the import added, or None when it needs none."""
    if not CALLS.search(source) or re.search(r"^import alembic_postgresql_enum\b", source, re.M):
        return None
    lines = source.splitlines(keepends=True)
    for prefix in BEFORE:
        for index, line in enumerate(lines):
            if line.startswith(prefix):
                lines.insert(index, IMPORT + "\n")
                return "".join(lines)
    return None  # no import block we recognise: leave it, `alembic upgrade` names the fix


def migrate(project: Path) -> list[str]:
    messages = []
    for revision in sorted((project / VERSIONS).rglob("*.py")):
        changed = add_import(revision.read_text())
        if changed is not None:
            revision.write_text(changed)
            messages.append(
                f"{revision.relative_to(project)}: added `import alembic_postgresql_enum` "
                "(it calls op.add_enum_value or op.sync_enum_values)"
            )
    return messages


def main() -> int:
    for message in migrate(Path.cwd()):
        print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
