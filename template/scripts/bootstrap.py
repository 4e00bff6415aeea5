"""Set this service up on a fresh machine, with only Python and git.

    python3 scripts/bootstrap.py

Creates .venv, installs the service with its dev dependencies, starts the
embedded development database, applies the migrations and runs the tests.
Safe to run again.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")


def step(title: str, *command: str | Path) -> None:
    print(f"==> {title}", flush=True)
    subprocess.run([str(part) for part in command], cwd=ROOT, check=True)


def main() -> int:
    if not (BIN / "python").exists():
        print("==> creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    python = BIN / "python"
    install = ("-m", "pip", "install", "--quiet")
    step("upgrading pip", python, *install, "--upgrade", "pip")
    step("installing dependencies", python, *install, "--editable", ".", "--group", "dev")
    step("starting the development database", python, "scripts/devdb.py", "start")
    step("applying migrations", python, "-m", "alembic", "upgrade", "head")
    step("checking models against the database", python, "-m", "alembic", "check")
    step("running the tests", python, "-m", "pytest", "-q")
    print("\nReady. Activate with `source .venv/bin/activate`.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        sys.exit(f"bootstrap stopped: `{' '.join(exc.cmd)}` exited with {exc.returncode}")
