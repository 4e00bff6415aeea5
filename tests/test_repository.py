"""The template repository's own CI definition is valid and runs what CI runs."""

from __future__ import annotations

import subprocess
import sys

import yaml
from helpers import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_workflow_passes_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            WORKFLOW,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_covers_three_pythons_and_two_postgres_majors() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    pythons = set(jobs["embedded-postgres"]["strategy"]["matrix"]["python"])
    assert pythons == {"3.11", "3.12", "3.13"}
    container = jobs["service-container"]
    assert container["services"]["postgres"]["image"] == "postgres:${{ matrix.postgres }}"
    assert container["strategy"]["matrix"]["postgres"] != ["18"]  # 18 is the embedded one
    assert "TEST_DATABASE_URL" in container["env"]
    for job in jobs.values():
        assert {"run": "bash .ci/run"} in job["steps"]
        assert job["steps"][0]["with"]["fetch-depth"] == 0
