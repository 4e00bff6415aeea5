"""`make compat` in a rendered FastAPI service with a git history of its own: the previous
release's app, warm, and its own tests, on this release's schema.

Run for real: the service's `python -m tests.infra.compat` (what `make compat` runs),
uvicorn, the embedded PostgreSQL. docs/expand-contract.md's walk-through, step by step,
on changes that pass; a raw-SQL constraint squawk cannot see, on one that fails.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from helpers import Service, render
from sqlalchemy.engine import URL
from updating import IDENTITY, commit_all, git

COMPAT = (sys.executable, "-m", "tests.infra.compat")
LINT = (sys.executable, "-m", "tests.infra.migration_lint")


@pytest.fixture(scope="module")
def released(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FastAPI service whose first release is tagged v1.0.0."""
    root = render(copier_template, tmp_path_factory.mktemp("compat") / "shop", web="fastapi")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in IDENTITY.items():
            patch.setenv(key, value)
        git(root, "init", "-q")
        commit_all(root, "v1.0.0")
        git(root, "tag", "v1.0.0")
    return root


@pytest.fixture
def service(released: Path, tmp_path: Path) -> Service:
    return Service(Path(shutil.copytree(released, tmp_path / "shop")))


def test_a_check_in_raw_sql_that_squawk_passes_breaks_the_previous_release(
    service: Service,
) -> None:
    """NOT VALID takes no long lock, so squawk has nothing to say, and the pre-deploy check
    cannot read SQL: release N-1 still inserts the names the constraint now rejects."""
    [first] = service.revisions()
    service.write_revision(
        "long_names",
        first.name.split("-")[1].split("_")[0],
        """op.execute("ALTER TABLE item ADD CONSTRAINT ck_item_name CHECK (length(name) > 9) NOT VALID")""",
    )
    assert service.ok(service.run(*LINT)).startswith("squawk: no problems")

    result = service.run(*COMPAT, env=service.env(), timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "compat: N-1 is v1.0.0 (" in output
    failed = [line for line in output.splitlines() if line.startswith("FAILED: ")]
    assert "FAILED: N-1's tests failed on N's pre-deploy schema (their output is above)" in failed
    assert "ck_item_name" in output  # N-1's own test says which constraint
    assert "Traceback" not in "\n".join(failed)


def test_a_base_that_is_no_commit_or_a_skip_without_a_reason_is_one_line(
    service: Service,
) -> None:
    result = service.run(*COMPAT, "--base", "v0.9.9", env=service.env())
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "compat: v0.9.9 is no commit here (git fetch --tags?)\n"
    service.write("tests/compat_skip.txt", "tests/test_items.py::test_an_unknown_item_is_a_404\n")
    result = service.run(*COMPAT, env=service.env(), timeout=240)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "compat: tests/compat_skip.txt:1: `tests/test_items.py::test_an_unknown_item_is_a_404` "
        "needs a reason"
    )


def walkthrough(service: Service) -> list[tuple[str, str]]:
    """docs/expand-contract.md: ("file", path and content) or ("bash", lines), in order."""
    section = (service.path / "docs/expand-contract.md").read_text()
    steps = []
    for language, body in re.findall(r"```(python|bash)\n(.*?)```", section, flags=re.S):
        if language == "python":
            path, content = body.split("\n", 1)
            assert path.startswith("# "), body
            steps.append(("file", f"{path[2:]}\n{content}"))
        else:
            steps.append(("bash", body))
    return steps


def test_the_walkthrough_passes_compat_at_each_release(service: Service, database_url: URL) -> None:
    """A rename and a NOT NULL column, pre-deploy and post-deploy, over two releases:
    exactly the page's files and commands, `make compat` at each release."""
    env = service.env(**IDENTITY)
    releases = []
    for kind, text in walkthrough(service):
        if kind == "file":
            path, content = text.split("\n", 1)
            service.write(path, content)
            continue
        for command in text.strip().splitlines():
            if command == "make compat":
                result = service.run(*COMPAT, env=env, timeout=240)
                output = result.stdout + result.stderr
                assert result.returncode == 0, output
                served = re.findall(r"app answered (\d+) of (\d+) requests", output)
                assert len(served) == 2 and all(a == b != "0" for a, b in served), output
                assert "N-1's tests on N's pre-deploy schema: exit 0" in output, output
                releases.append(re.search(r"N-1 is (v[\d.]+) ", output)[1])  # type: ignore[index]
            else:
                service.ok(service.run("bash", "-c", command, env=env))
    assert releases == ["v1.0.0", "v1.1.0"]
    assert "v1.2.0" in git(service.path, "tag")
    # The models match the revisions, and the page's revisions pass the lint.
    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    service.ok(service.alembic("check", database_url=database_url))
    assert service.ok(service.run(*LINT)).startswith("squawk: no problems")
