"""The scripts copier runs while updating a service across a version (`_migrations`).

v0.2.0: tests/conftest.py leaves the template's hands (the update itself is
tested in test_update.py). v0.3.0: revisions that call alembic-postgresql-enum's
operations import it, since `upgrade` no longer does.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from database import applied_versions, sql
from helpers import ROOT, Service, load_fixup, one_line_failure
from sqlalchemy.engine import URL
from updating import commit_all, copier_update, copy_template, git, render_committed

OLD_CONFTEST = Path(__file__).parent / "data" / "v0_1_0_conftest.py.jinja"
# A revision as alembic-postgresql-enum wrote it under v0.2.0: no import of its own.
V0_2_0_ENUM_REVISION = '''"""add archived

Revision ID: r2
Revises: r1
Create Date: 2026-11-20 10:00:00.000000

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "r2"
down_revision: str | Sequence[str] | None = "r1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_enum_value(  # type: ignore[attr-defined]
        enum_schema="public",
        enum_name="book_status",
        new_value="archived",
    )


def downgrade() -> None:
    pass
'''


@pytest.mark.parametrize("package", ["app", "bookstore"])
def test_v0_2_0_recognises_the_v0_1_0_conftest_whatever_the_package_and_line_ends(
    tmp_path: Path, package: str
) -> None:
    migration = load_fixup("v0_2_0_conftest")
    rendered = OLD_CONFTEST.read_text().replace("{{ package_name }}", package)
    target = tmp_path / "tests" / "conftest.py"
    target.parent.mkdir()
    target.write_bytes(rendered.replace("\n", "\r\n").encode())
    new = migration.NEW_CONFTEST.read_text()

    assert migration.migrate(tmp_path, package, new) == migration.REPLACED
    assert target.read_text() == new
    assert migration.migrate(tmp_path, package, new) is None  # already done: silent
    target.write_text(rendered.replace("def alembic_config", "def my_alembic_config"))
    assert migration.migrate(tmp_path, package, new) == migration.LEFT_ALONE


def test_v0_3_0_adds_the_import_only_where_an_operation_needs_it() -> None:
    migration = load_fixup("v0_3_0_enum_import")
    fixed = migration.add_import(V0_2_0_ENUM_REVISION)
    assert fixed == V0_2_0_ENUM_REVISION.replace(
        "from alembic import op\n", f"{migration.IMPORT}\nfrom alembic import op\n"
    )
    with_sqlalchemy = V0_2_0_ENUM_REVISION.replace(
        "from alembic import op\n", "import sqlalchemy as sa\nfrom alembic import op\n"
    )
    assert migration.add_import(with_sqlalchemy) == with_sqlalchemy.replace(
        "import sqlalchemy as sa\n", f"{migration.IMPORT}\nimport sqlalchemy as sa\n"
    )
    assert migration.add_import(fixed) is None  # already there
    assert migration.add_import(V0_2_0_ENUM_REVISION.replace("op.add_enum_value", "op.f")) is None


def test_v0_2_0_enum_revision_fails_in_one_line_then_the_migration_fixes_it(
    service: Service, database_url
) -> None:
    service.write_revision("r1", None, 'sa.Enum("draft", name="book_status").create(op.get_bind())')
    revision = service.write("alembic/versions/r2.py", V0_2_0_ENUM_REVISION)

    result = service.alembic("upgrade", "head", database_url=database_url)
    one_line_failure(result, "add_enum_value", "import alembic_postgresql_enum", progress=True)
    assert applied_versions(database_url) == []  # the run rolled back whole

    script = ROOT / "update_fixups" / "v0_3_0_enum_import.py"
    output = service.ok(service.run(sys.executable, script))
    assert output.strip() == (
        "alembic/versions/r2.py: added `import alembic_postgresql_enum` "
        "(it calls op.add_enum_value or op.sync_enum_values)"
    )
    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    labels = sql(database_url, "SELECT enum_range(NULL::book_status)::text")[0]
    assert labels == [("{draft,archived}",)]
    service.ok(service.run(sys.executable, "-m", "ruff", "check", revision))


def test_v0_3_0_starts_the_lint_after_the_revisions_a_service_already_has(
    service: Service,
) -> None:
    # History written before the lint: a dropped table squawk would fail.
    service.write_revision("old1", None, 'op.create_table("t", sa.Column("id", sa.Integer))')
    service.write_revision("old2", "old1", 'op.drop_table("t")')
    lint = [sys.executable, "-m", "tests.infra.migration_lint"]
    assert "ban-drop-table" in service.run(*lint).stdout

    output = service.ok(
        service.run(sys.executable, ROOT / "update_fixups/v0_3_0_lint_start_after.py")
    )
    assert output.startswith("pyproject.toml: the migration lint starts after old2 ")
    assert 'start_after = "old2"' in (service.path / "pyproject.toml").read_text()
    assert "no problems in 0 revision(s)" in service.ok(service.run(*lint))
    # Idempotent: a second run writes nothing more.
    assert (
        service.ok(service.run(sys.executable, ROOT / "update_fixups/v0_3_0_lint_start_after.py"))
        == ""
    )

    # What comes after is linted as in any service.
    service.write_revision("new1", "old2", 'op.drop_column("u", "x")')
    result = service.run(*lint)
    assert result.returncode == 1 and "new1.py: ban-drop-column" in result.stdout


@pytest.mark.parametrize("lint_table", [True, False], ids=["v0.3.0-table", "no-table"])
def test_v0_5_0_starts_the_pre_deploy_check_after_the_revisions_a_service_has(
    service: Service, lint_table: bool
) -> None:
    """Old revisions are pre-deploy (no `deploy_phase` line) and followed the old advice:
    a NOT VALID check and SET NOT NULL in one deploy. squawk passes them; the new check
    would not."""
    script = ROOT / "update_fixups/v0_5_0_phase_check_start_after.py"
    service.write_revision("old1", None, 'op.create_table("t", sa.Column("x", sa.Text))')
    service.write_revision(
        "old2",
        "old1",
        'op.create_check_constraint("ck_t_x", "t", "x IS NOT NULL", postgresql_not_valid=True)',
    )
    pyproject = service.path / "pyproject.toml"
    if lint_table:  # what v0.3.0's fix-up wrote, with a key of the team's after it
        pyproject.write_text(
            pyproject.read_text() + "\n[tool.migration-lint]\nstart_after = []\n\n[tool.x]\ny = 1\n"
        )
    lint = [sys.executable, "-m", "tests.infra.migration_lint"]
    assert "old2.py: new-constraint: " in service.run(*lint).stdout

    output = service.ok(service.run(sys.executable, script))
    assert output.startswith("pyproject.toml: the pre-deploy check starts after old2 ")
    settings = tomllib.loads(pyproject.read_text())["tool"]
    assert settings["migration-lint"]["phase_check_start_after"] == "old2"
    assert settings.get("x") == ({"y": 1} if lint_table else None)
    assert "no problems in 2 revision(s)" in service.ok(service.run(*lint))
    assert service.ok(service.run(sys.executable, script)) == ""  # idempotent

    # What comes after is checked as in any service.
    service.write_revision("new1", "old2", 'op.alter_column("t", "x", nullable=False)')
    result = service.run(*lint)
    assert result.returncode == 1 and "new1.py: set-not-null: " in result.stdout


def test_v0_3_0_finds_every_head_and_merge_parent(tmp_path: Path) -> None:
    migration = load_fixup("v0_3_0_lint_start_after")
    versions = tmp_path / "alembic/versions"
    versions.mkdir(parents=True)
    for name, down in [
        ("a", None),
        ("b", "a"),
        ("c", "a"),
        ("m", ("b", "c")),
        ("d", "m"),
        ("e", "m"),
    ]:
        (versions / f"{name}.py").write_text(
            f"revision: str = {name!r}\ndown_revision = {down!r}\n"
        )
    assert migration.heads(tmp_path) == ["d", "e"]


@pytest.mark.usefixtures("git_identity")
def test_a_real_update_across_v0_3_0_runs_both_fix_ups(tmp_path: Path, database_url: URL) -> None:
    """copier itself runs the v0.3.0 entries of `_migrations` (versions, paths, python)."""
    repo = tmp_path / "template"
    repo.mkdir()
    copy_template(repo)
    git(repo, "init", "-q")
    commit_all(repo, "v0.2.0")
    git(repo, "tag", "v0.2.0")
    (repo / "template" / "NOTES.md").write_text("v0.3.0\n")
    commit_all(repo, "v0.3.0")
    git(repo, "tag", "v0.3.0")

    service = Service(render_committed(repo, tmp_path / "svc", "v0.2.0"))
    service.write_revision("r1", None, 'sa.Enum("draft", name="book_status").create(op.get_bind())')
    service.write("alembic/versions/r2.py", V0_2_0_ENUM_REVISION)
    commit_all(service.path, "an enum revision as v0.2.0 wrote it")

    output = service.ok(copier_update(service, "--vcs-ref", "v0.3.0"))

    assert "alembic/versions/r2.py: added `import alembic_postgresql_enum`" in output, output
    assert "pyproject.toml: the migration lint starts after r2 " in output, output
    service.ok(service.alembic("upgrade", "head", database_url=database_url))
    assert "no problems in 0 revision(s)" in service.ok(
        service.run(sys.executable, "-m", "tests.infra.migration_lint")
    )


def test_v0_4_0_aliases_only_the_old_paths_the_services_code_imports(tmp_path: Path) -> None:
    layout = load_fixup("v0_4_0_layout")
    for folder in ("app/db", "app/infra/web", "scripts", "tests"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "scripts/seed.py").write_text("from app.db.session import create_engine\n")
    (tmp_path / "app/infra/web/database.py").write_text("from app.web.database import x\n")

    [line] = layout.write_aliases(tmp_path, "app")

    assert line.endswith("app/db/session.py, app/db/migrate.py.")  # the step: always
    alias = (tmp_path / "app/db/session.py").read_text()
    assert "create_app_engine as create_engine" in alias and "DeprecationWarning" in alias
    # infra/ is the template's: its text imports nothing of the user's.
    assert not (tmp_path / "app/web").exists() and not (tmp_path / "tests/db_fixtures.py").exists()
    assert layout.write_aliases(tmp_path, "app") == []  # nothing is written twice
