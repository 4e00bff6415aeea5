"""GitHub workflows held to a supply-chain audit: zizmor's offline audits, and what
they ask for spelled out (a token that reads the code and no more, no credentials
left on the runner, every action pinned to a commit with its release beside it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ZIZMOR = Path(sys.executable).with_name("zizmor")
# owner/repo[/path]@<40 hex>  # vX.Y.Z
PINNED = re.compile(r"^\s*-?\s*uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40})  # (v\d+\.\d+\.\d+)$")
# A suppression must say why: `# zizmor: ignore[rule] reason`.
SUPPRESSION = re.compile(r"#\s*zizmor:\s*ignore\[[\w,-]+\](.*)$")


def zizmor(*workflows: Path) -> str:
    """zizmor --offline's findings; fails on any, and on a suppression without a reason."""
    for workflow in workflows:
        for number, line in enumerate(workflow.read_text().splitlines(), 1):
            match = SUPPRESSION.search(line)
            assert not match or match[1].strip(), (
                f"{workflow}:{number}: suppressed without a reason"
            )
    result = subprocess.run(
        [ZIZMOR, "--offline", "--no-progress", "--format", "plain", *workflows],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "No findings to report" in output, output
    return output


def pins(workflow: Path) -> dict[tuple[str, str], str]:
    """{(action, release): commit} of every `uses:`; fails on one not pinned so."""
    found: dict[tuple[str, str], str] = {}
    for line in workflow.read_text().splitlines():
        if re.match(r"^\s*-?\s*uses:", line):
            match = PINNED.match(line)
            assert match, f"{workflow.name}: not pinned to a commit with its release: {line!r}"
            action, commit, release = match.groups()
            assert found.setdefault((action, release), commit) == commit, line
    return found


def assert_hardened(workflow: Path) -> dict[tuple[str, str], str]:
    """No token scope by default, `contents: read` per job, checkout keeps no credentials."""
    data: dict[Any, Any] = yaml.safe_load(workflow.read_text())
    assert data["permissions"] == {}, "the workflow's default token scope must be empty"
    for name, job in data["jobs"].items():
        assert job.get("permissions") == {"contents": "read"}, name
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name
    return pins(workflow)
