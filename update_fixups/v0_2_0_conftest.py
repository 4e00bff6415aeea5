"""Copier migration to v0.2.0: tests/conftest.py becomes yours.

Up to v0.1.0 the template owned tests/conftest.py (the database fixtures). Since
v0.2.0 they live in tests/db_fixtures.py and conftest.py is skipped by updates,
so an old service would keep the old fixtures forever. This rewrites the file to
the new minimal one, but only if it is still exactly what v0.1.0 rendered.
Pure and offline: reads and writes tests/conftest.py, nothing else.

Run by copier in the service's directory: python v0_2_0_conftest.py PACKAGE_NAME
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

TARGET = Path("tests/conftest.py")
# The new file, from the template version being updated to (this script's checkout).
NEW_CONFTEST = Path(__file__).resolve().parent.parent / "template" / "tests" / "conftest.py"
# SHA-256 of v0.1.0's template/tests/conftest.py.jinja, normalised as below.
V0_1_0_SHA256 = "4dfbd83d4a5ef2d7ebc6bf6a02e557f83b016b11773d93a3fe125e3523bdd50e"

REPLACED = (
    "tests/conftest.py: replaced the v0.1.0 database fixtures (unchanged by you) with the "
    "new minimal file; the fixtures now live in tests/db_fixtures.py."
)
LEFT_ALONE = (
    "tests/conftest.py was edited since v0.1.0 and was left as is: its database fixtures "
    "now live in tests/db_fixtures.py, so delete them from it, keep your own, and add "
    "`from .db_fixtures import *  # noqa: F403` at its top (the old `database_url`, an "
    "empty database, is now `empty_database_url`)."
)


def normalise(text: str, package: str) -> str:
    """Back to the template's form: package name placeholder, no trailing blanks, LF."""
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(lines).strip().replace(f"from {package}.", "from {{ package_name }}.")


def fingerprint(text: str, package: str) -> str:
    return hashlib.sha256(normalise(text, package).encode()).hexdigest()


def migrate(project: Path, package: str, new_conftest: str) -> str | None:
    """Rewrite an unchanged v0.1.0 conftest; return the line to print, if any."""
    target = project / TARGET
    if not target.is_file():
        return None  # removed by the user, or rendered fresh by this update
    current = target.read_text()
    if normalise(current, package) == normalise(new_conftest, package):
        return None
    if fingerprint(current, package) == V0_1_0_SHA256:
        target.write_text(new_conftest)
        return REPLACED
    return LEFT_ALONE


def main(argv: list[str]) -> int:
    (package,) = argv
    message = migrate(Path.cwd(), package, NEW_CONFTEST.read_text())
    if message:
        print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
