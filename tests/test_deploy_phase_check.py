"""What would break the release still serving, in a rendered service's own suite: each
breaking operation as a pre-deploy revision fails it with a line that names the
revision, the operation and what to do; as a post-deploy revision it passes that check.

Hand-written revisions, Alembic's real offline rendering and operations, real squawk:
one service holds every case twice, and its lint test runs once.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import Service
from test_squawk import LINT, findings

TABLES = """
op.create_table("author", sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True))
op.create_table(
    "book",
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("isbn", sa.Text(), nullable=True),
    sa.Column("status", sa.Enum("draft", "out", name="book_status"), nullable=True),
)
"""
ENUM_IMPORT = "import alembic_postgresql_enum  # noqa: F401\n"
# Each on the tables TABLES made: (upgrade, what a pre-deploy revision is told).
BREAKING = {
    "drop_column": ('op.drop_column("book", "isbn")', {"ban-drop-column"}),
    "drop_table": ('op.drop_table("author")', {"ban-drop-table"}),
    "rename_column": (
        'op.alter_column("book", "isbn", new_column_name="ean")',
        {"renaming-column"},
    ),
    "rename_table": ('op.rename_table("author", "writer")', {"renaming-table"}),
    "type_change": ('op.alter_column("book", "title", type_=sa.Text())', {"changing-column-type"}),
    "set_not_null": ('op.alter_column("book", "isbn", nullable=False)', {"set-not-null"}),
    "check_constraint": (
        'op.create_check_constraint("ck_book_isbn", "book", "isbn <> \'\'",'
        " postgresql_not_valid=True)",
        {"new-constraint"},
    ),
    "unique_index": (
        "with op.get_context().autocommit_block():\n"
        '    op.create_index("ux_book_isbn", "book", ["isbn"], unique=True,'
        " postgresql_concurrently=True, if_not_exists=True)",
        {"new-constraint"},
    ),
    "enum_removal": (
        ENUM_IMPORT + "from alembic_postgresql_enum import TableReference\n"
        'op.sync_enum_values(enum_schema="public", enum_name="book_status", new_values=["draft"],'
        ' affected_columns=[TableReference(table_schema="public", table_name="book",'
        ' column_name="status")], enum_values_to_rename=[])',
        {"enum-value-removed"},
    ),
}
# squawk's rules about locks stay on in both phases: a SET NOT NULL scans the table.
LOCKS = {"set_not_null": {"adding-not-nullable-field"}}
# squawk's own rules on the SQL alembic-postgresql-enum writes for the old type.
ALSO = {
    "enum_removal": {
        "changing-column-type",
        "renaming-object",
        "ban-drop-type",
        "ban-drop-function",
    }
}


@pytest.fixture(scope="module")
def suite_run(
    default_render: Path, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    service = Service(Path(shutil.copytree(default_render, tmp_path_factory.mktemp("n1") / "svc")))
    service.write_revision("tables", None, TABLES)
    down = "tables"
    for name, (upgrade, _) in BREAKING.items():
        for phase in ("pre-deploy", "post-deploy"):
            revision = f"{name}_{phase.split('-')[0]}"
            service.write_revision(revision, down, upgrade, phase=phase)
            down = revision
    return service.pytest("tests/infra/test_migration_lint.py")


@pytest.mark.parametrize("case", BREAKING, ids=BREAKING)
def test_pre_deploy_fails_post_deploy_passes(
    case: str, suite_run: subprocess.CompletedProcess[str]
) -> None:
    output = suite_run.stdout
    assert suite_run.returncode == 1 and "Traceback" not in output, output
    found = findings(output)
    expected = BREAKING[case][1] | LOCKS.get(case, set()) | ALSO.get(case, set())
    assert found.get(f"{case}_pre", set()) == expected, output
    assert found.get(f"{case}_post", set()) == LOCKS.get(case, set()), output
    # A set: under CI=true pytest's summary repeats the failure's message in full.
    [line] = {
        line
        for line in output.splitlines()
        if re.search(rf"^alembic/versions/{case}_pre\.py: ({'|'.join(BREAKING[case][1])}): ", line)
    }
    assert 'move it to a post-deploy revision (`deploy_phase = "post-deploy"`) or expand first' in (
        line
    )


def test_an_acknowledged_operation_passes_and_needs_a_reason(service: Service) -> None:
    service.write_revision("tables", None, TABLES)
    service.write_revision(
        "check",
        "tables",
        """
        # deploy-safe new-constraint: only this release writes isbn
        op.create_check_constraint("ck_book_isbn", "book", "isbn <> ''", postgresql_not_valid=True)
        """,
    )
    assert service.ok(service.run(*LINT)) == "squawk: no problems in 2 revision(s)\n"
    revision = service.path / "alembic/versions/check.py"
    revision.write_text(revision.read_text().replace(": only this release writes isbn", ""))
    result = service.run(*LINT)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "alembic/versions/check.py:11: `# deploy-safe new-constraint` needs a reason: "
        "`# deploy-safe new-constraint: <why it is safe>`"
    ]
