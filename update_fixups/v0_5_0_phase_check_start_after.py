"""Copier migration to v0.5.0: the pre-deploy check starts after the revisions a service has.

v0.5.0 checks each pre-deploy revision for what would break the release still serving
(tests/infra/deploy_phase_check.py): SET NOT NULL, a new constraint on an existing
table, an enum value removed. A service's revisions are all pre-deploy (none has a
`deploy_phase` line), and those already applied followed the old advice, which did
such things in one deploy: checking them now would fail the suite on history nobody
can change. As v0.3.0 did for squawk, this records the current head revision(s) as
`[tool.migration-lint] phase_check_start_after` in pyproject.toml. Pure and offline.

Run by copier in the service's directory: python v0_5_0_phase_check_start_after.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from v0_3_0_lint_start_after import PYPROJECT, TABLE, heads

KEY = "phase_check_start_after"


def migrate(project: Path) -> str | None:
    pyproject = project / PYPROJECT
    found = heads(project)
    if not found or not pyproject.exists():
        return None
    text = pyproject.read_text()
    if f"\n{KEY} " in text or f"\n{KEY}=" in text:
        return None
    value = f'"{found[0]}"' if len(found) == 1 else "[" + ", ".join(f'"{h}"' for h in found) + "]"
    entry = (
        "# Revisions up to this one were applied before the pre-deploy check (copier\n"
        f"# update to v0.5.0): tests/infra/migration_lint.py does not check them.\n{KEY} = {value}\n"
    )
    lines = text.splitlines(keepends=True)
    if any(line.strip() == TABLE for line in lines):  # into the table v0.3.0 made
        at = next(i for i, line in enumerate(lines) if line.strip() == TABLE) + 1
        lines.insert(at, entry)
        pyproject.write_text("".join(lines))
    else:
        pyproject.write_text(text.rstrip("\n") + f"\n\n{TABLE}\n{entry}")
    return (
        f"pyproject.toml: the pre-deploy check starts after {', '.join(found)} "
        f"([tool.migration-lint] {KEY}); earlier revisions are not checked"
    )


def main() -> int:
    message = migrate(Path.cwd())
    if message:
        print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
