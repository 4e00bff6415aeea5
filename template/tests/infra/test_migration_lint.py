"""Every revision's offline SQL passes squawk (tests/infra/migration_lint.py, .squawk.toml),
and no pre-deploy revision breaks the release still serving (deploy_phase_check.py).

Template-owned. No database needed. A revision that does a flagged thing on purpose
acknowledges it in its own file: `# squawk-ignore <rule>: <why it is safe>`, or
`# deploy-safe <check>: <why>`.
"""

from __future__ import annotations

import pytest

from .migration_lint import LintError, lint


def test_every_revision_passes_squawk_and_the_pre_deploy_check() -> None:
    try:
        _, problems = lint()
    except LintError as exc:
        pytest.fail(str(exc), pytrace=False)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
