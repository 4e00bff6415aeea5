"""Every revision's offline SQL passes squawk (tests/infra/migration_lint.py, .squawk.toml).

Template-owned. No database needed. A revision that does a flagged thing on purpose
acknowledges it in its own file: `# squawk-ignore <rule>: <why it is safe>`.
"""

from __future__ import annotations

import pytest

from .migration_lint import LintError, lint


def test_every_revision_passes_squawk() -> None:
    try:
        _, problems = lint()
    except LintError as exc:
        pytest.fail(str(exc), pytrace=False)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
