"""The template repository's own CI definition is valid and runs what CI runs."""

from __future__ import annotations

import re
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
    for name in ("embedded-postgres", "service-container"):
        assert {"run": "bash .ci/run"} in jobs[name]["steps"]
    for job in jobs.values():
        assert job["steps"][0]["with"]["fetch-depth"] == 0


def test_image_job_builds_and_runs_the_image_for_both_package_managers() -> None:
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["image"]
    assert set(job["strategy"]["matrix"]["package_manager"]) == {"uv", "poetry"}
    assert job["services"]["postgres"]["image"] == "postgres:18"
    [image] = [step for step in job["steps"] if step.get("run", "").startswith("bash .ci/image")]
    assert image == {
        "run": 'bash .ci/image "$PACKAGE_MANAGER"',
        "env": {"PACKAGE_MANAGER": "${{ matrix.package_manager }}"},  # never ${{ }} in run:
    }
    script = (ROOT / ".ci" / "image").read_text()
    for step in (
        '-d web=fastapi -d package_manager="$manager"',
        "lock",
        "docker build",
        "python -m app.infra.migrate",
        "curl -fsS localhost:8000/health",
        ".State.Health.Status",
        "docker stop",
    ):
        assert step in script, step
    # The versions it locks with are the ones the Dockerfile pins.
    dockerfile = (ROOT / "template" / "Dockerfile.jinja").read_text()
    for tool, pin in (("uv", "ghcr.io/astral-sh/uv:"), ("poetry", "poetry==")):
        version = re.search(rf"{re.escape(pin)}([\d.]+)", dockerfile).group(1)
        assert f"{tool}=={version}" in script, (tool, version)
    syntax = subprocess.run(["bash", "-n", ROOT / ".ci" / "image"], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
