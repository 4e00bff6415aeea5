"""`make update`: this service to a newer template release, as docs/updating.md says.

    python3 scripts/update.py                      # the newest release
    python3 scripts/update.py --vcs-ref v0.6.0     # or a given one (copier's options pass)

Runs `copier update --trust --skip-answered` (copier asks only the questions new since
your version), then names the files left with conflicts and what to run next. Exit 0:
updated, nothing to resolve; 1: files with conflicts, or copier failed (its message
says why: a tree with uncommitted changes, for one).

copier comes from PATH, or `$COPIER` (a command), or is installed, pinned, into
.tools/copier (git-ignored), as the template's README installs it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSWERS = ROOT / ".copier-answers.yml"
# The versions the template is tested with (its pyproject.toml); Renovate updates them.
PINS = ["copier==9.19.1", "copier-template-extensions==0.3.4"]
TOOLS = ROOT / ".tools" / "copier"


def copier() -> list[str]:
    if os.environ.get("COPIER"):
        return shlex.split(os.environ["COPIER"])
    found = shutil.which("copier")
    if found and _has_extensions(Path(found)):
        return [found]
    executable = TOOLS / "bin" / "copier"
    if not executable.exists():
        print(f"==> installing {' '.join(PINS)} into {TOOLS.relative_to(ROOT)}", flush=True)
        venv.create(TOOLS, with_pip=True)
        subprocess.run([TOOLS / "bin" / "pip", "install", "-q", *PINS], check=True)
    return [str(executable)]


def _has_extensions(executable: Path) -> bool:
    """The template loads copier-template-extensions: copier without it cannot render."""
    python = executable.with_name("python")
    if not python.exists():
        return False
    probe = [str(python), "-c", "import copier_template_extensions"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def release() -> str:
    for line in ANSWERS.read_text().splitlines():
        if line.startswith("_commit:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def git(*args: str) -> list[str]:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.splitlines()


def main(args: list[str]) -> int:
    before = release()
    command = [*copier(), "update", "--trust", "--skip-answered", *args]
    print(f"==> {' '.join(command)}", flush=True)
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        print("update: copier stopped (its message above says why); nothing was changed")
        return 1
    after = release()
    conflicts = git("diff", "--name-only", "--diff-filter=U")
    rejected = [path for path in ROOT.rglob("*.rej") if ".git" not in path.parts]
    conflicts += sorted(str(path.relative_to(ROOT)) for path in rejected)
    print(f"update: {before} -> {after}" if before != after else f"update: still at {after}")
    if conflicts:
        print(f"update: {len(conflicts)} file(s) with conflicts: {', '.join(conflicts)}")
        print(
            "Next: in each, keep what you want between `<<<<<<< before updating` and "
            "`>>>>>>> after updating`, delete the markers, `git add` it; then `make lint test`, "
            "`git diff --staged`, commit."
        )
        return 1
    print("Next: `make lint test`, review `git diff`, commit (the CHANGELOG says what else).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
