"""Kustomize builds of the rendered manifests, and checkov in a virtualenv of its own
(tests/test_kubernetes.py)."""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from helpers import ROOT
from servers import missing


def kubectl(*args: str | Path) -> str:
    result = subprocess.run(
        [Path(sys.executable).with_name("kubectl"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Build:
    """What `kubectl apply -k <directory>` would send: the objects, in order."""

    def __init__(self, root: Path, directory: str, out: Path) -> None:
        self.root = root
        self.text = kubectl("kustomize", root / directory)
        self.file = out
        out.write_text(self.text)
        self.objects: list[dict[str, Any]] = [
            doc for doc in yaml.safe_load_all(self.text) if doc is not None
        ]

    def kinds(self) -> list[str]:
        return [obj["kind"] for obj in self.objects]

    def one(self, kind: str) -> dict[str, Any]:
        [found] = [obj for obj in self.objects if obj["kind"] == kind]
        return found

    def pod_specs(self) -> list[dict[str, Any]]:
        return [
            obj["spec"]["template"]["spec"]
            for obj in self.objects
            if obj["kind"] in {"Deployment", "Job"}
        ]


def write_readme_overlay(root: Path) -> None:
    """The overlay the service's manual (docs/deploy.md) tells users to write, where it says."""
    manual = (root / "docs/deploy.md").read_text()
    [overlay] = re.findall(r"```yaml\n(# (deploy/k8s/overlays/\S+)\n.*?)```", manual, re.DOTALL)
    target = root / overlay[1]
    target.parent.mkdir(parents=True)
    target.write_text(overlay[0])


# checkov pins packaging<24 (pytest 9 needs >=24) and a dozen more old versions: it
# gets a virtualenv of its own, made once per clone from its dependency group.
def checkov_requirements() -> list[str]:
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    return groups["checkov"]


def install_checkov() -> Path:
    """checkov's executable, installed once per clone (later calls find it)."""
    [pin] = [r for r in checkov_requirements() if r.startswith("checkov==")]
    venv = ROOT / ".tools" / pin.replace("==", "-")
    executable, done = venv / "bin" / "checkov", venv / ".installed"
    venv.parent.mkdir(exist_ok=True)
    with open(venv.parent / "checkov.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time, across processes
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)
            # uv (the test group's): seconds where pip took 12-30 s on a fresh machine.
            uv = Path(sys.executable).with_name("uv")
            subprocess.run([uv, "venv", "-q", "--python", sys.executable, venv], check=True)
            install = subprocess.run(
                [uv, "pip", "install", "-q", "--python", venv / "bin" / "python"]
                + checkov_requirements(),
                capture_output=True,
                text=True,
                timeout=600,
            )
            if install.returncode != 0 or not executable.exists():
                missing(f"cannot install {pin} into {venv}: {install.stderr.strip()[-500:]}")
            done.touch()
    return executable
