"""Dependencies checked, image described.

- The image's SBOM: the Dockerfile's own `cyclonedx-py environment` command, run here
  on the environment rendered services run in (it holds their runtime dependencies),
  writes a CycloneDX document that passes the CycloneDX schema and names them.
- The audit (scripts/audit.py: `make audit`, CI's audit job) reads the lock file, and
  never passes when it did not run: no network is one line and exit 2.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import runpy
import shlex
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile import instructions
from helpers import Service
from jsonschema import Draft7Validator, FormatChecker
from rfc3986_validator import validate_rfc3986

PYTHON = Path(sys.executable)
LOCK = """\
version = 1
requires-python = ">=3.11"

[[package]]
name = "idna"
version = "3.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "idna"
version = "3.7"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "my-service"
version = "0.1.0"
source = { editable = "." }
"""
# pip-audit's JSON report, as a stand-in pip_audit module prints it.
STUB = """\
import json, os, sys
listed = open(sys.argv[sys.argv.index("--requirement") + 1]).read().split()
with open(os.environ["AUDIT_CALLS"], "a") as calls:
    calls.write(" ".join(listed) + "\\n")
dependencies = []
for line in listed:
    name, version = line.split("==")
    found = json.loads(os.environ["AUDIT_FOUND"]).get(line, {"vulns": []})
    dependencies.append({"name": name, "version": version, **found})
print(json.dumps({"dependencies": dependencies, "fixes": []}))
"""


def cyclonedx_validator(spec_version: str) -> Draft7Validator:
    """The CycloneDX schema and $ref registry as cyclonedx-python-lib loads them, with
    IRIs checked as URI references: jsonschema's IRI check parses each with lark, about
    0.1 s a URL (70 s for one SBOM of this environment)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    formats = Draft7Validator.FORMAT_CHECKER.checkers
    checker = FormatChecker([name for name in formats if not name.startswith("iri")])
    for name in ("iri", "iri-reference"):
        checker.checks(name)(
            lambda value: not isinstance(value, str) or validate_rfc3986(value, "URI_reference")
        )
    strict = JsonStrictValidator(SchemaVersion.from_version(spec_version))
    return strict._validator.evolve(format_checker=checker)  # the library's schema, whole


def sbom_command(dockerfile: Path, output: Path) -> list[str]:
    """The Dockerfile's SBOM command, for this environment instead of /app/.venv."""
    runs = [arguments for name, arguments in instructions(dockerfile) if name == "RUN"]
    [step] = [part for run in runs for part in run.split(" && ") if "cyclonedx-py" in part]
    command = shlex.split(step)
    assert command[:2] == ["cyclonedx-py", "environment"] and command[-1] == ".venv/bin/python"
    command[command.index("-o") + 1] = str(output)
    return [str(PYTHON.with_name("cyclonedx-py")), *command[1:-1], str(PYTHON)]


def test_image_sbom_passes_the_cyclonedx_schema(default_render: Path, tmp_path: Path) -> None:
    dockerfile = default_render / "Dockerfile"
    pinned = [a for name, a in instructions(dockerfile) if name == "RUN" and "cyclonedx-bom==" in a]
    assert [f'"cyclonedx-bom=={importlib.metadata.version("cyclonedx-bom")}"' in a for a in pinned]
    assert pinned == [pinned[0]]  # installed in the build stage, once

    output = tmp_path / "sbom.cdx.json"
    service = Service(default_render)
    service.ok(service.run(*sbom_command(dockerfile, output)))

    sbom: dict[str, Any] = json.loads(output.read_text())
    validator = cyclonedx_validator(sbom["specVersion"])
    assert not [error.message for error in validator.iter_errors(sbom)]
    main = sbom["metadata"]["component"]
    assert (main["name"], main["type"]) == ("my-service", "application")
    versions = {c["name"].lower(): c["version"] for c in sbom["components"]}
    for name in ("sqlalchemy", "asyncpg", "alembic", "pydantic-settings"):
        assert versions[name] == importlib.metadata.version(name), name
    # ... and the schema check can fail.
    sbom["components"][0]["type"] = "spreadsheet"
    assert next(validator.iter_errors(sbom), None) is not None


def test_audit_runs_in_ci_and_make(default_render: Path) -> None:
    jobs = yaml.safe_load((default_render / ".github/workflows/ci.yml").read_text())["jobs"]
    assert {"run": "uv run python scripts/audit.py", "name": "Audit the lock file"} in jobs[
        "audit"
    ]["steps"]
    assert "\tpython3 scripts/update.py" in (default_render / "Makefile").read_text()
    assert "\t$(RUN) python scripts/audit.py" in (default_render / "Makefile").read_text()
    dev = tomllib.loads((default_render / "pyproject.toml").read_text())["dependency-groups"]
    assert any(requirement.startswith("pip-audit") for requirement in dev["dev"])


@pytest.fixture
def audited(default_render: Path, tmp_path: Path) -> Service:
    """The audit script, beside a lock file that pins two versions of one package."""
    service = Service(tmp_path / "svc")
    (service.path / "scripts").mkdir(parents=True)
    shutil.copy2(default_render / "scripts/audit.py", service.path / "scripts/audit.py")
    (service.path / "uv.lock").write_text(LOCK)
    return service


def audit(service: Service, **env: str) -> tuple[int, list[str]]:
    base = {k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", "pythonpath"}}
    result = service.run(PYTHON, "scripts/audit.py", env={**base, **env}, timeout=120)
    return result.returncode, (result.stdout + result.stderr).strip().splitlines()


def test_audit_without_network_fails_in_one_line(audited: Service, tmp_path: Path) -> None:
    closed = "http://127.0.0.1:9"  # nothing listens: as good as no network
    code, lines = audit(
        audited, HTTPS_PROXY=closed, https_proxy=closed, XDG_CACHE_HOME=str(tmp_path / "cache")
    )
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("audit: not done, pip-audit could not look the packages up:")
    assert "pypi.org" in lines[0]


def test_audit_lists_vulnerabilities_and_refuses_unchecked_packages(
    audited: Service, tmp_path: Path
) -> None:
    stub = tmp_path / "stub" / "pip_audit"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    (stub / "__main__.py").write_text(STUB)
    calls = tmp_path / "calls"
    vuln = {"id": "PYSEC-2024-60", "aliases": ["CVE-2024-3651"], "fix_versions": ["3.7"]}
    env = {"PYTHONPATH": str(stub.parent), "AUDIT_CALLS": str(calls)}

    code, lines = audit(audited, **env, AUDIT_FOUND=json.dumps({"idna==3.6": {"vulns": [vuln]}}))
    assert code == 1, lines
    assert lines == [
        "idna 3.6: PYSEC-2024-60 (CVE-2024-3651), fixed in 3.7",
        "audit: 1 known vulnerabilities in 2 locked packages",
    ]
    # One version of a name per pip-audit run; the project itself is not looked up.
    assert calls.read_text().splitlines() == ["idna==3.6", "idna==3.7"]

    skipped = {"idna==3.7": {"skip_reason": "Dependency not found on PyPI"}}
    code, lines = audit(audited, **env, AUDIT_FOUND=json.dumps(skipped))
    assert (code, lines) == (
        2,
        [
            "audit: not done, 1 of 2 locked packages could not be checked "
            "(first: Dependency not found on PyPI)"
        ],
    )
    code, lines = audit(audited, **env, AUDIT_FOUND="{}")
    assert (code, lines) == (0, ["audit: no known vulnerability in 2 locked packages"])

    (audited.path / "uv.lock").unlink()
    code, lines = audit(audited, **env, AUDIT_FOUND="{}")
    assert (code, lines) == (2, ["audit: not done, no uv.lock: run `make lock` and commit it"])


def test_audit_reads_poetry_lock_files(default_render: Path) -> None:
    """poetry.lock: packages without a source are PyPI's; git, directories are skipped."""
    namespace = runpy.run_path(str(default_render / "scripts/audit.py"), run_name="audit")
    lock = default_render.parent / "poetry.lock"
    lock.write_text(
        '[[package]]\nname = "asyncpg"\nversion = "0.30.0"\ngroups = ["main"]\n\n'
        '[[package]]\nname = "tool"\nversion = "1.0"\n[package.source]\ntype = "git"\n'
        'url = "https://example.com/tool.git"\n\n'
        '[[package]]\nname = "private"\nversion = "2.0"\n[package.source]\ntype = "legacy"\n'
        'url = "https://pypi.example.com/simple"\n'
    )
    try:
        assert namespace["locked"](lock) == {"asyncpg": {"0.30.0"}, "private": {"2.0"}}
    finally:
        lock.unlink()
