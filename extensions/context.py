"""Context hook: values derived from the answers, computed in one place.

Copier also calls the hook while questions are still being asked, before every
answer exists, so answers are read with `.get()`. Keep it pure and offline:
`copier update` re-runs the old version's hook too.
"""

from __future__ import annotations

from typing import Any

from copier_template_extensions import ContextHook


def derived_values(answers: dict[str, Any]) -> dict[str, Any]:
    python = str(answers.get("python_version") or "3.11")
    major, minor = python.split(".")[:2]
    return {
        "python_requires": f">={major}.{minor}",
        # ruff's target-version and mypy's python_version spell it differently.
        "ruff_target": f"py{major}{minor}",
        "postgres_image": f"postgres:{answers.get('postgres_version') or 18}",
    }


class ContextUpdater(ContextHook):
    def hook(self, context: dict[str, Any]) -> None:
        context.update(derived_values(context))
