"""Updates after day one: from v0.4.0 (the README the team rewrote stays theirs, the
manual arrives in docs/), then `make update`, which names what conflicts and what next.

A throwaway template repository holds this repository's v0.4.0 state (by commit, never
by tag) tagged v0.4.0, this checkout tagged v0.5.0, and this checkout plus two changes
tagged v0.5.1. Updates go through the command lines users run.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from copier import run_copy
from helpers import ROOT, Service
from updating import (
    TEMPLATE_FILES,
    answers,
    assert_no_conflicts_left,
    commit_all,
    copy_template,
    git,
    replace_once,
)

V0_4_0 = "3d46208"  # the release commit of v0.4.0 plus its unreleased notes
OUR_README = "# Orders\n\nThe orders service. Ask #team-orders.\n"
LINT_LINE = "lint: ## ruff and mypy --strict\n"
ENV_FIX = (
    '    "compare_server_default": True,\n',
    '    "compare_server_default": True,  # v0.5.1\n',
)
pytestmark = pytest.mark.usefixtures("git_identity")


def clear(repo: Path) -> None:
    for path in repo.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory, git_identity: None) -> Path:
    repo = tmp_path_factory.mktemp("template-repo")
    git(repo, "init", "-q")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", V0_4_0, *TEMPLATE_FILES],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    if archive.returncode != 0:
        pytest.fail(f"commit {V0_4_0} is not in this clone: the test needs the history")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(repo, filter="data")
    commit_all(repo, "v0.4.0")
    git(repo, "tag", "v0.4.0")
    clear(repo)
    copy_template(repo)
    commit_all(repo, "v0.5.0")
    git(repo, "tag", "v0.5.0")
    # v0.5.1: a line the service also changed (a conflict) and one it did not.
    replace_once(repo / "template/Makefile.jinja", LINT_LINE, "lint: ## ruff, mypy --strict\n")
    replace_once(repo / "template/alembic/env.py.jinja", *ENV_FIX)
    commit_all(repo, "v0.5.1")
    git(repo, "tag", "v0.5.1")
    return repo


def rendered(template_repo: Path, destination: Path, tag: str) -> Service:
    run_copy(str(template_repo), destination, vcs_ref=tag, defaults=True, unsafe=True, quiet=True)
    git(destination, "init", "-q")
    commit_all(destination, f"render {tag}")
    return Service(destination)


def copier_env(service: Service) -> dict[str, str]:
    """scripts/update.py's copier: this environment's, as a command."""
    return service.env(COPIER=f"{sys.executable} -m copier")


def test_from_v0_4_0_the_readme_stays_the_teams_then_make_update_names_conflicts(
    template_repo: Path, tmp_path: Path
) -> None:
    """One service through two updates (each copier update costs seconds)."""
    service = rendered(template_repo, tmp_path / "svc", "v0.4.0")
    assert not (service.path / "docs").exists()
    (service.path / "README.md").write_text(OUR_README)
    commit_all(service.path, "our README")

    # v0.4.0 has no `make update`: its README's command, as `make update` runs it.
    command = [sys.executable, "-m", "copier", "update", "--trust", "--skip-answered"]
    output = service.ok(service.run(*command, "--defaults", "--vcs-ref", "v0.5.0", timeout=300))

    assert (service.path / "README.md").read_text() == OUR_README
    assert_no_conflicts_left(service.path)
    for page in ("migrations", "connections", "testing", "deploy", "operations", "updating"):
        assert (service.path / "docs" / f"{page}.md").is_file(), page
    assert (service.path / "renovate.json").is_file()
    assert answers(service.path)["_commit"] == "v0.5.0"
    # _message_after_update: from which release to which, and where the CHANGELOG is.
    assert "Template updated from v0.4.0 to v0.5.0." in output, output
    assert f"{template_repo}/CHANGELOG.md (at v0.5.0)" in output
    commit_all(service.path, "v0.5.0")

    # When copier stops (a dirty tree, say: tests/test_update.py), `make update` says so.
    refused = service.run("make", "update", env=service.env(COPIER="false"))
    assert refused.returncode != 0
    assert "update: copier stopped (its message above says why)" in refused.stdout

    # A line the team changed and the next release changes too: a conflict, named.
    makefile = service.path / "Makefile"
    replace_once(makefile, LINT_LINE, "lint: ## ruff and mypy --strict, and our own checks\n")
    commit_all(service.path, "our lint target")
    result = service.run("make", "update", "to=v0.5.1", env=copier_env(service), timeout=300)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output  # something is left to do
    assert "update: v0.5.0 -> v0.5.1" in output
    assert "update: 1 file(s) with conflicts: Makefile" in output
    assert "`<<<<<<< before updating`" in output and "`make lint test`" in output
    assert "Template updated from v0.5.0 to v0.5.1." in output
    assert ENV_FIX[1] in (service.path / "alembic/env.py").read_text()  # merged cleanly
    assert git(service.path, "diff", "--name-only", "--diff-filter=U").split() == ["Makefile"]
    assert (service.path / "README.md").read_text() == OUR_README


@pytest.mark.parametrize(
    "source",
    [
        "https://github.com/copier-async-postgres/copier-async-postgres.git",
        "gh:copier-async-postgres/copier-async-postgres",
        "git@github.com:copier-async-postgres/copier-async-postgres.git",
    ],
)
def test_update_message_links_the_changelog_at_the_release(source: str, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from extensions.updating import changelog_url, version_at_head

    assert changelog_url(source, "v0.5.0") == (
        "https://github.com/copier-async-postgres/copier-async-postgres/blob/v0.5.0/CHANGELOG.md"
    )
    assert version_at_head(tmp_path, ".copier-answers.yml") == ""  # not a repository: no claim
