"""What the update tests share: git in throwaway repositories, and copier update."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from copier import run_copy
from helpers import ROOT, Service

# What a template repository holds (copier.yml's _subdirectory is template/).
TEMPLATE_FILES = ("copier.yml", "template", "extensions", "update_fixups")
IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"git {args}: {result.stderr}"
    return result.stdout


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def copier_update(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    return service.run(
        sys.executable, "-m", "copier", "update", "--trust", "--defaults", *args, timeout=300
    )


def answers(root: Path) -> dict[str, object]:
    return yaml.safe_load((root / ".copier-answers.yml").read_text())


def changed_files(root: Path) -> set[str]:
    """Paths git sees as changed or new since the last commit."""
    return {line[3:] for line in git(root, "status", "--porcelain", "-uall").splitlines()}


def assert_no_conflicts_left(root: Path) -> None:
    """No .rej files, no marker lines (as pre-commit's check-merge-conflict sees them)."""
    assert not list(root.rglob("*.rej"))
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            for line in path.read_text(errors="replace").splitlines():
                assert not line.startswith(("<<<<<<< ", ">>>>>>> ")), path
                assert line != "=======", path


def render_committed(template_repo: Path, dst: Path, ref: str, **data: object) -> Path:
    run_copy(
        str(template_repo), dst, data=data, vcs_ref=ref, defaults=True, unsafe=True, quiet=True
    )
    git(dst, "init", "-q")
    commit_all(dst, f"render {ref}")
    return dst


def copy_template(repo: Path) -> None:
    """This checkout's template files into `repo` (no bytecode)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.py[co]")
    for name in TEMPLATE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=ignore)
        else:
            shutil.copy2(source, repo / name)
