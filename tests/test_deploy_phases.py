"""Pre-deploy and post-deploy revisions through the migrate step, on a real server:
`pre-deploy` stops before the first pending post-deploy revision, `post-deploy`
applies the rest, `alembic upgrade head` still applies everything, and a history the
pre-deploy step cannot run in order is refused before anything is applied."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from database import applied_versions, fresh_database, sql
from helpers import Service, one_line_failure
from sqlalchemy.engine import URL


def migrate(service: Service, url: URL, *args: str):  # type: ignore[no-untyped-def]
    return service.run(sys.executable, "-m", "app.infra.migrate", *args, database_url=url)


def nullable(url: URL, table: str, column: str) -> bool:
    rows = sql(
        url,
        "SELECT is_nullable FROM information_schema.columns"
        f" WHERE table_name = '{table}' AND column_name = '{column}'",
    )[0]
    return rows[0][0] == "YES"


@pytest.fixture
def expand_then_contract(service: Service) -> Service:
    """r1 a table; r2 (pre-deploy, as old revisions without the line are) a nullable
    column; r3 (post-deploy) its NOT NULL."""
    service.write_revision(
        "r1", None, 'op.create_table("book", sa.Column("id", sa.Integer, primary_key=True))'
    )
    service.write_revision("r2", "r1", 'op.add_column("book", sa.Column("isbn", sa.Text))')
    service.write_revision(
        "r3", "r2", 'op.alter_column("book", "isbn", nullable=False)', phase="post-deploy"
    )
    return service


def test_pre_deploy_stops_before_post_deploy_which_applies_the_rest(
    expand_then_contract: Service, database_url: URL
) -> None:
    service = expand_then_contract
    output = service.ok(migrate(service, database_url, "pre-deploy"))
    assert applied_versions(database_url) == ["r2"]
    assert nullable(database_url, "book", "isbn")
    assert "post-deploy revisions left for the post-deploy step: r3" in output

    service.ok(migrate(service, database_url, "post-deploy"))
    assert applied_versions(database_url) == ["r3"]
    assert not nullable(database_url, "book", "isbn")
    # At head both steps have nothing to do.
    service.ok(migrate(service, database_url, "pre-deploy"))
    assert applied_versions(database_url) == ["r3"]


def test_upgrade_head_and_the_bare_step_apply_everything(
    expand_then_contract: Service, database_url: URL, postgres_server: URL
) -> None:
    service = expand_then_contract
    service.ok(migrate(service, database_url))
    assert applied_versions(database_url) == ["r3"]
    with fresh_database(postgres_server) as other:
        service.ok(service.alembic("upgrade", "head", database_url=other))
        assert applied_versions(other) == ["r3"]


def test_pre_deploy_behind_a_pending_post_deploy_is_refused_before_anything_runs(
    expand_then_contract: Service, database_url: URL
) -> None:
    """The previous release's post-deploy step never ran, and the next release brings a
    pre-deploy revision after it: running r3 now would break the release still serving."""
    service = expand_then_contract
    service.write_revision("r4", "r3", 'op.add_column("book", sa.Column("note", sa.Text))')
    service.ok(service.alembic("upgrade", "r2", database_url=database_url))
    line = one_line_failure(
        migrate(service, database_url, "pre-deploy"),
        "pre-deploy revision alembic/versions/r4.py comes after post-deploy revision "
        "alembic/versions/r3.py, which has not run",
        "app.infra.migrate post-deploy",
        progress=True,
    )
    assert "then deploy this release again" in line
    assert applied_versions(database_url) == ["r2"]


def test_a_wrong_phase_or_argument_is_one_line(
    expand_then_contract: Service, database_url: URL
) -> None:
    service = expand_then_contract
    result = migrate(service, database_url, "predeploy")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "usage: python -m app.infra.migrate [pre-deploy | post-deploy]: unexpected 'predeploy'"
    ), result.stderr
    revision = Path(service.path / "alembic/versions/r3.py")
    revision.write_text(revision.read_text().replace('"post-deploy"', '"later"'))
    one_line_failure(
        migrate(service, database_url, "pre-deploy"),
        "alembic/versions/r3.py: deploy_phase = 'later': it must be 'pre-deploy' or 'post-deploy'",
        progress=True,
    )
    assert applied_versions(database_url) == []
