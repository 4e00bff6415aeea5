"""Dangerous revisions fail the rendered service's own checks: squawk on each revision's
offline SQL, through the service's test, `make lint-migrations`'s command and pre-commit's.

Hand-written revisions, the real squawk binary, Alembic's real offline rendering.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import Service

LINT = (sys.executable, "-m", "tests.infra.migration_lint")  # what make, pre-commit and CI run
FINDING = re.compile(r"^(alembic/versions/\S+\.py): ([a-z-]+): ", re.M)
# New tables, written as autogenerate would: none of it is flagged (the index included).
TABLES = """
op.create_table(
    "author",
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
)
op.create_table(
    "book",
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("author_id", sa.BigInteger(), nullable=True),
    sa.Column("isbn", sa.Text(), nullable=True),
)
op.create_index("ix_book_title", "book", ["title"])
"""


def findings(output: str) -> dict[str, set[str]]:
    """{revision file name: the rules reported for it}."""
    found: dict[str, set[str]] = {}
    for path, rule in FINDING.findall(output):
        found.setdefault(Path(path).stem, set()).add(rule)
    return found


# Each on the tables TABLES made, in this order: one revision each.
DANGEROUS = {
    "index": (
        'op.create_index("ix_book_isbn", "book", ["isbn"])',
        {"require-concurrent-index-creation"},
    ),
    "required_column": (
        'op.add_column("book", sa.Column("sku", sa.Text(), nullable=False))',
        {"adding-required-field"},
    ),
    "type_change": (
        'op.alter_column("book", "id", type_=sa.BigInteger())',
        {"changing-column-type"},
    ),
    "foreign_key": (
        'op.create_foreign_key("fk_book_author_id_author", "book", "author", ["author_id"], ["id"])',
        {"adding-foreign-key-constraint", "constraint-missing-not-valid", "new-constraint"},
    ),
    "uuid_default": (
        'op.add_column("book", sa.Column("token", sa.Uuid(), server_default=sa.text("gen_random_uuid()")))',
        {"adding-field-with-default"},
    ),
    "clock_default": (
        'op.add_column("book", sa.Column("seen", sa.DateTime(timezone=True),'
        ' server_default=sa.text("clock_timestamp()")))',
        {"adding-field-with-default"},
    ),
    # now() is STABLE: PostgreSQL 11+ stores one value, no rewrite. squawk is right.
    "now_default": (
        'op.add_column("book", sa.Column("added", sa.DateTime(timezone=True),'
        " server_default=sa.func.now()))",
        set(),
    ),
    "column_rename": (
        'op.alter_column("book", "isbn", new_column_name="ean")',
        {"renaming-column"},
    ),
    "table_rename": ('op.rename_table("author", "writer")', {"renaming-table"}),
    "column_drop": ('op.drop_column("book", "ean")', {"ban-drop-column"}),
    "table_drop": ('op.drop_table("writer")', {"ban-drop-table"}),
}


@pytest.fixture(scope="module")
def dangerous_suite_run(
    default_render: Path, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    """One service holding every dangerous revision; its lint test, run once."""
    service = Service(
        Path(shutil.copytree(default_render, tmp_path_factory.mktemp("dangerous") / "svc"))
    )
    service.write_revision("tables", None, TABLES)
    down = "tables"
    for name, (upgrade, _) in DANGEROUS.items():
        service.write_revision(name, down, upgrade)
        down = name
    # No database needed: the lint renders offline SQL.
    return service.pytest("tests/infra/test_migration_lint.py")


def test_dangerous_revisions_fail_the_service_suite(
    dangerous_suite_run: subprocess.CompletedProcess[str],
) -> None:
    output = dangerous_suite_run.stdout
    assert dangerous_suite_run.returncode == 1, output
    assert "1 failed" in output and "Traceback" not in output
    assert "On purpose? Add `# squawk-ignore <rule>: <why it is safe>`" in output
    assert "tables" not in findings(output)  # new tables, their index and identity keys pass


@pytest.mark.parametrize("case", DANGEROUS, ids=DANGEROUS)
def test_each_dangerous_revision_is_reported_with_its_rule(
    case: str, dangerous_suite_run: subprocess.CompletedProcess[str]
) -> None:
    expected = DANGEROUS[case][1]
    assert findings(dangerous_suite_run.stdout).get(case, set()) == expected, (
        dangerous_suite_run.stdout
    )


def test_an_acknowledged_revision_passes_and_a_missing_reason_is_one_line(
    service: Service,
) -> None:
    service.write_revision("tables", None, TABLES)
    required = service.write_revision(
        "required",
        "tables",
        """
        # squawk-ignore adding-required-field: the table is empty in every environment
        op.add_column("book", sa.Column("sku", sa.Text(), nullable=False))
        """,
    )
    # A branch and its merge: the merge's SQL starts from two parents.
    service.write_revision("side", "tables", 'op.add_column("book", sa.Column("note", sa.Text()))')
    service.write_revision("merge", ("required", "side"), "pass")
    result = service.run(*LINT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "squawk: no problems in 4 revision(s)\n"

    comment = "# squawk-ignore adding-required-field"
    required.write_text(re.sub(f"{comment}: .*", comment, required.read_text()))
    number = required.read_text().splitlines().index(comment) + 1
    result = service.run(*LINT)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"alembic/versions/required.py:{number}: `{comment}` needs a reason: "
        "`# squawk-ignore adding-required-field: <why it is safe>`"
    ]


def test_make_and_pre_commit_run_the_lint(service: Service) -> None:
    service.write_revision("tables", None, TABLES)
    index = service.write_revision("index", "tables", DANGEROUS["index"][0])
    tables = service.path / "alembic/versions/tables.py"
    gitkeep = service.path / "alembic/versions/.gitkeep"

    # The Makefile's target; RUN (`uv run`) emptied, this interpreter first on PATH.
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    result = service.run("make", "lint-migrations", "RUN=", env=service.env(PATH=path))
    assert result.returncode == 2, result.stdout
    assert findings(result.stdout) == {"index": {"require-concurrent-index-creation"}}

    # pre-commit appends the changed files it matched to the hook's entry.
    result = service.run(*LINT, str(tables), str(gitkeep))
    assert result.returncode == 0, result.stdout
    assert result.stdout == "squawk: no problems in 1 revision(s)\n"
    result = service.run(*LINT, str(index.relative_to(service.path)))
    assert result.returncode == 1
    assert findings(result.stdout) == {"index": {"require-concurrent-index-creation"}}

    hook = re.search(
        r"- id: squawk\n(?:        .*\n)+", (service.path / ".pre-commit-config.yaml").read_text()
    )
    assert hook, "no squawk hook"
    assert "entry: uv run python -m tests.infra.migration_lint" in hook.group(0)
    assert "files: ^alembic/versions/" in hook.group(0)


def test_alembic_version_table_is_not_linted_with_every_rule_on(service: Service) -> None:
    """The first revision's SQL creates alembic_version (a VARCHAR(32) key): Alembic's, not ours."""
    service.write(".squawk.toml", 'pg_version = "18.0"\nexcluded_rules = []\n')
    service.write_revision(
        "tables",
        None,
        'op.create_table("tag", sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True))',
    )
    service.write_revision(
        "code", "tables", 'op.create_table("code", sa.Column("c", sa.String(8)))'
    )
    result = service.run(*LINT)
    assert result.returncode == 1
    assert findings(result.stdout) == {"code": {"prefer-text-field"}}, result.stdout


def interpreter_without_squawk(tmp_path: Path) -> Path:
    """A venv that sees this one's packages (alembic...) but has no squawk in its bin/."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True)
    [site] = (tmp_path / "venv" / "lib").glob("python*/site-packages")
    shared = [p for p in sys.path if p.endswith("site-packages")]
    (site / "shared.pth").write_text("\n".join(shared) + "\n")
    return tmp_path / "venv" / "bin" / "python"


def test_bad_set_ups_give_one_line(service: Service, tmp_path: Path) -> None:
    service.write_revision("tables", None, TABLES)
    python = interpreter_without_squawk(tmp_path)
    env = service.env(PATH="/usr/bin:/bin")
    result = service.run(python, "-m", "tests.infra.migration_lint", env=env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: squawk not found: it comes with the dev dependencies (squawk-cli); install them\n"
    )

    config = service.path / ".squawk.toml"
    rendered = config.read_text()
    config.write_text('excluded_rules = ["no-such-rule"]\n')
    result = service.run(*LINT)
    assert result.returncode == 2
    assert re.fullmatch(
        r"error: squawk failed \(exit 1\): .*invalid rule name no-such-rule.*\n", result.stderr
    )

    config.write_text(rendered)
    service.write_revision("reads", "tables", 'op.get_bind().execute(sa.text("SELECT 1")).scalar()')
    result = service.run(*LINT)
    assert result.returncode == 1
    [line] = result.stdout.splitlines()
    assert line.startswith(
        "alembic/versions/reads.py: cannot render its offline SQL (AttributeError("
    )
    assert "Traceback" not in result.stdout + result.stderr
