"""`copier update` moves a service to a newer template version and loses nothing.

The module builds a throwaway template repository from this checkout with two tags
(never this repository's own): v0.1.0, where tests/conftest.py is still the
template-owned fixture file it was in v0.1.0, and v0.2.0, this checkout plus a
one-line "fix" in alembic/env.py. Services are rendered once per module and
copied per test; updates go through the copier command line, as users run it.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from database import table_names
from helpers import Service, load_fixup
from sqlalchemy.engine import URL
from updating import (
    answers,
    assert_no_conflicts_left,
    changed_files,
    commit_all,
    copier_update,
    copy_template,
    git,
    render_committed,
    replace_once,
)

OLD_CONFTEST = Path(__file__).parent / "data" / "v0_1_0_conftest.py.jinja"
ENV_PY = "alembic/env.py"
FIX_BEFORE = '    "compare_server_default": True,\n'
FIX_AFTER = '    "compare_server_default": True,  # fixed in v0.2.0\n'
MARKERS = ("<<<<<<< before updating", "=======", ">>>>>>> after updating")
MIGRATION_BLOCK = re.compile(r"^# Fix-ups for services.*?(?=^_message_after_copy)", re.M | re.S)
pytestmark = pytest.mark.usefixtures("git_identity")


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("template-repo")
    copy_template(repo)
    copier_yml = repo / "copier.yml"
    current_config = copier_yml.read_text()
    new_conftest = repo / "template/tests/conftest.py"
    current_conftest = new_conftest.read_text()

    # v0.1.0: conftest.py template-owned with the old fixtures, no migrations.
    new_conftest.unlink()
    shutil.copy2(OLD_CONFTEST, repo / "template/tests/conftest.py.jinja")
    # Every file under tests/ the template's (no "yours" patterns for tests/ yet).
    replace_once(copier_yml, '  - "tests/**"\n  - "!tests/infra/**"\n', "")
    old_config, found = MIGRATION_BLOCK.subn("", copier_yml.read_text())
    assert found == 1, "the _migrations block moved: update MIGRATION_BLOCK"
    copier_yml.write_text(old_config)
    git(repo, "init", "-q")
    commit_all(repo, "v0.1.0")
    git(repo, "tag", "v0.1.0")

    # v0.2.0: this checkout, and a fix in env.py.
    copier_yml.write_text(current_config)
    (repo / "template/tests/conftest.py.jinja").unlink()
    new_conftest.write_text(current_conftest)
    replace_once(repo / "template/alembic/env.py.jinja", FIX_BEFORE, FIX_AFTER)
    commit_all(repo, "v0.2.0: fix env.py")
    git(repo, "tag", "v0.2.0")
    return repo


@pytest.fixture(scope="module")
def old_render(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A service rendered at v0.1.0 and committed."""
    return render_committed(template_repo, tmp_path_factory.mktemp("old") / "svc", "v0.1.0")


@pytest.fixture
def old(old_render: Path, tmp_path: Path) -> Service:
    """A private copy (git history included) of the v0.1.0 service."""
    return Service(Path(shutil.copytree(old_render, tmp_path / "svc", symlinks=True)))


def test_update_brings_the_fix_and_keeps_user_files(
    old: Service, template_repo: Path, database_url: URL
) -> None:
    old.add_book_revision(database_url)
    replace_once(
        old.path / "app/core/config.py",
        '"""Read from the environment and from `.env`."""\n',
        '"""Read from the environment and from `.env`."""\n\n    FEATURE_X: bool = False\n',
    )
    commit_all(old.path, "book model, its migration, a setting")
    user_files = ["app/core/config.py", "app/models/__init__.py", "app/models/book.py"]
    user_files += [str(p.relative_to(old.path)) for p in old.revisions()]
    before = {name: (old.path / name).read_bytes() for name in user_files}
    assert len(before) == 4

    output = old.ok(copier_update(old, "--vcs-ref", "v0.2.0"))

    assert FIX_AFTER in (old.path / ENV_PY).read_text(), output
    assert {name: (old.path / name).read_bytes() for name in user_files} == before
    assert_no_conflicts_left(old.path)
    assert answers(old.path)["_commit"] == "v0.2.0"
    assert not (old.path / "update_fixups").exists()  # copier's fix-up scripts stay home
    old.ok(old.alembic("upgrade", "head", database_url=database_url))
    old.ok(old.alembic("check", database_url=database_url))
    assert "book" in table_names(database_url)


def test_update_merges_a_user_edit_elsewhere_in_env_py(old: Service) -> None:
    ours = "config = context.config  # ours: kept by updates\n"
    replace_once(old.path / ENV_PY, "config = context.config\n", ours)
    commit_all(old.path, "our env.py tweak")

    old.ok(copier_update(old, "--vcs-ref", "v0.2.0"))

    env_py = (old.path / ENV_PY).read_text()
    assert ours in env_py and FIX_AFTER in env_py
    assert_no_conflicts_left(old.path)
    diff = git(old.path, "diff", "-U0", "--", ENV_PY).splitlines()
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-" + FIX_BEFORE.rstrip("\n"),
        "+" + FIX_AFTER.rstrip("\n"),
    ]


def test_update_conflict_on_the_fixed_line_keeps_both_versions(old: Service) -> None:
    ours = '    "compare_server_default": False,  # ours: too noisy for us\n'
    replace_once(old.path / ENV_PY, FIX_BEFORE, ours)
    commit_all(old.path, "our own lock key")

    result = copier_update(old, "--vcs-ref", "v0.2.0")

    # Copier reports success even with conflicts left in the files.
    assert result.returncode == 0, result.stderr
    env_py = (old.path / ENV_PY).read_text()
    for marker in MARKERS:
        assert marker + "\n" in env_py
    ours_at, fix_at = env_py.index(ours), env_py.index(FIX_AFTER)
    assert env_py.index(MARKERS[0]) < ours_at < env_py.index(MARKERS[1]) < fix_at
    assert fix_at < env_py.index(MARKERS[2])
    # ... and marks the file unmerged, so `git commit` refuses until it is resolved.
    assert git(old.path, "diff", "--name-only", "--diff-filter=U").split() == [ENV_PY]
    assert not list(old.path.rglob("*.rej"))
    with pytest.raises(AssertionError):  # the check the other tests rely on sees them
        assert_no_conflicts_left(old.path)


def test_a_changed_answer_rerenders_only_what_depends_on_it(
    template_repo: Path, tmp_path: Path
) -> None:
    service = Service(render_committed(template_repo, tmp_path / "svc", "v0.2.0"))
    assert answers(service.path)["postgres_version"] == 18

    service.ok(copier_update(service, "--vcs-ref", ":current:", "-d", "postgres_version=16"))

    assert changed_files(service.path) == {
        ".copier-answers.yml",
        ".github/workflows/ci.yml",
        ".squawk.toml",
        "compose.yaml",
    }
    assert answers(service.path)["postgres_version"] == 16
    assert "image: postgres:16" in (service.path / "compose.yaml").read_text()
    assert 'pg_version = "16.0"' in (service.path / ".squawk.toml").read_text()
    assert "postgres:18" not in (service.path / ".github/workflows/ci.yml").read_text()
    assert_no_conflicts_left(service.path)


def test_update_refuses_a_dirty_tree_and_leaves_it_untouched(old: Service) -> None:
    (old.path / ENV_PY).write_text((old.path / ENV_PY).read_text() + "# work in progress\n")
    (old.path / "notes.txt").write_text("not committed\n")
    status, diff = git(old.path, "status", "--porcelain"), git(old.path, "diff")

    result = copier_update(old, "--vcs-ref", "v0.2.0")

    assert result.returncode == 1
    assert "Destination repository is dirty; cannot continue." in result.stdout + result.stderr
    assert (git(old.path, "status", "--porcelain"), git(old.path, "diff")) == (status, diff)
    assert answers(old.path)["_commit"] == "v0.1.0"


def test_update_works_from_a_fresh_clone_elsewhere(
    old: Service, template_repo: Path, tmp_path: Path
) -> None:
    src_path = Path(str(answers(old.path)["_src_path"]))
    assert src_path.is_absolute() and src_path == template_repo
    clone = tmp_path / "elsewhere" / "deep" / "clone"
    git(tmp_path, "clone", "-q", str(old.path), str(clone))
    service = Service(clone)

    service.ok(copier_update(service, "--vcs-ref", "v0.2.0"))

    assert FIX_AFTER in (clone / ENV_PY).read_text()
    assert answers(clone)["_commit"] == "v0.2.0"
    assert_no_conflicts_left(clone)


def test_check_update_tells_a_newer_version_is_out(old: Service) -> None:
    """What the README offers for "is there a newer version?"."""
    check = [sys.executable, "-m", "copier", "check-update"]
    result = old.run(*check, "--output-format", "json")
    assert json.loads(old.ok(result)) == {
        "update_available": True,
        "current_version": "0.1.0",
        "latest_version": "0.2.0",
    }
    assert old.run(*check, "--quiet").returncode == 2  # for scripts: 2 = update available


# The v0.2.0 migration: tests/conftest.py leaves the template's hands.


def test_migration_replaces_an_unchanged_v0_1_0_conftest(
    old: Service, template_repo: Path, postgres_server: URL
) -> None:
    conftest = old.path / "tests/conftest.py"
    assert "def database_url(" in conftest.read_text()  # the v0.1.0 fixtures

    output = old.ok(copier_update(old, "--vcs-ref", "v0.2.0"))

    migration = load_fixup("v0_2_0_conftest")
    assert migration.REPLACED in output
    assert conftest.read_text() == (template_repo / "template/tests/conftest.py").read_text()
    # The updated service's own suite runs on the new fixtures.
    env = old.env(TEST_DATABASE_URL=postgres_server.render_as_string(hide_password=False))
    assert "21 passed" in old.ok(old.pytest(env=env))


def test_migration_leaves_an_edited_conftest_alone_and_says_so(old: Service) -> None:
    conftest = old.path / "tests/conftest.py"
    conftest.write_text(conftest.read_text() + "\n\n# ours: a fixture of our own\n")
    commit_all(old.path, "our fixture")
    before = conftest.read_bytes()

    output = old.ok(copier_update(old, "--vcs-ref", "v0.2.0"))

    assert conftest.read_bytes() == before
    migration = load_fixup("v0_2_0_conftest")
    assert [line for line in output.splitlines() if "tests/conftest.py" in line] == [
        migration.LEFT_ALONE
    ]
