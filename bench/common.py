"""What every section shares: paths, the one timing helper, the run's context."""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# what, how, ours, reference
Row = tuple[str, str, str, str]
T = TypeVar("T")


@dataclass
class Context:
    workdir: Path
    template: Path  # this checkout's template, committed to a throwaway git repo
    server: Any  # sqlalchemy URL of the run's PostgreSQL
    repeat: int
    quick: bool


def alternate(ctx: Context, **actions: Callable[[], object]) -> dict[str, float]:
    """Median seconds of each action over ctx.repeat rounds, run in turn so drift hits all
    alike, after a warm-up run of each (it writes the .pyc files a user's second run
    would find). --quick skips the warm-up: it only shows that each action runs.

    An action that returns a float has timed itself (a clock inside the process it ran,
    around the part that matters): that replaces the wall time around it.
    """
    if not ctx.quick:
        for action in actions.values():
            action()
    samples = rounds(ctx.repeat, **{name: timed(action) for name, action in actions.items()})
    return {name: statistics.median(values) for name, values in samples.items()}


def rounds(repeat: int, **actions: Callable[[], T]) -> dict[str, list[T]]:
    """What each action returned in each of `repeat` rounds, the actions in turn within a
    round (alternate's order, no warm-up): for results that are more than one number."""
    samples: dict[str, list[T]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            samples[name].append(action())
    return samples


def timed(action: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        measured = action()
        elapsed = time.perf_counter() - start
        return measured if isinstance(measured, float) else elapsed

    return run


def check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        raise SystemExit(f"{result.args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def run(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return check(subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs))


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The rendered services' embedded-server settings and data directory, for the bench's server.
EMBEDDED_SERVER = ROOT / "template" / "tests" / "infra" / "embedded_server.py"
embedded_server = load_module(EMBEDDED_SERVER)


def template_repo(workdir: Path) -> Path:
    """This checkout's template, committed to a throwaway git repo (copier renders from git)."""
    repo = workdir / "template-repo"
    repo.mkdir()
    for name in ("copier.yml", "template", "extensions"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, repo / name)
    identity = {
        f"GIT_{who}_{what}": value
        for who in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", "bench"), ("EMAIL", "b@b"))
    }
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
        run("git", *command, cwd=repo, env={**os.environ, **identity})
    return repo
