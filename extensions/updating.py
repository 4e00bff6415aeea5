"""Jinja filters for copier.yml's `_message_after_update`: which release the service
left, and where the CHANGELOG says what changed.

Copier's context holds the release it updated to, not the one it left. An update
needs a clean, committed tree, so the answers file at the service's HEAD still
names the old release. Offline and read-only: git show, nothing else.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from jinja2 import Environment
from jinja2.ext import Extension

_GITHUB = re.compile(r"^(?:gh:|https://github\.com/|git@github\.com:)([\w.-]+/[\w.-]+?)(?:\.git)?/?$")


def version_at_head(dst_path: object, answers_file: object) -> str:
    """The template release in the committed answers file, or "" when unreadable."""
    result = subprocess.run(
        ["git", "show", f"HEAD:{Path(str(answers_file)).as_posix()}"],
        cwd=str(dst_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        return ""
    try:
        answers = yaml.safe_load(result.stdout)
    except yaml.YAMLError:
        return ""
    return str(answers.get("_commit", "")) if isinstance(answers, dict) else ""


def changelog_url(src_path: object, version: object) -> str:
    """The template's CHANGELOG.md at `version`, on GitHub when the template is there."""
    source = str(src_path)
    found = _GITHUB.match(source)
    if found:
        return f"https://github.com/{found[1]}/blob/{version}/CHANGELOG.md"
    return f"{source.rstrip('/')}/CHANGELOG.md (at {version})"


class UpdateMessageExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["version_at_head"] = version_at_head
        environment.filters["changelog_url"] = changelog_url
