"""squawk on each revision's offline SQL: what `alembic upgrade <down>:<rev> --sql` prints.

Template-owned: `copier update` keeps this file current. One implementation for
tests/infra/test_migration_lint.py, `make lint-migrations` and the pre-commit hook:

    python -m tests.infra.migration_lint [alembic/versions/<revision>.py ...]

Each revision is linted on its own, so an acknowledgement covers that revision
only. A revision that does a flagged thing on purpose says so in its file, with
the rule and why it is safe (one rule a line):

    # squawk-ignore adding-required-field: the table is empty in every environment

Revisions applied before a service adopted the lint are not linted: pyproject.toml's
`[tool.migration-lint] start_after` names the last of them (strong_migrations'
`start_after`); `copier update` to v0.3.0 sets it.

Rules: https://squawkhq.com/docs/rules; those excluded, and why, are in .squawk.toml.
Hand-written output: squawk's reporters name the temporary SQL files, not the revisions.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import Script, ScriptDirectory

ROOT = Path(__file__).resolve().parents[2]  # the project: tests/infra/ is two below
SQUAWK_CONFIG = ROOT / ".squawk.toml"
ACKNOWLEDGEMENT = re.compile(r"^\s*#\s*squawk-ignore\s+(?P<rule>[\w-]+)\s*(?::(?P<reason>.*))?$")
# Alembic's bookkeeping table, in the SQL of every first revision: not the revision's doing.
VERSION_TABLE = re.compile(
    r"^CREATE TABLE \S+ \(\s*version_num VARCHAR\(32\) NOT NULL,.*?\n\);\n", re.DOTALL | re.M
)
HOW_TO_ACKNOWLEDGE = (
    "On purpose? Add `# squawk-ignore <rule>: <why it is safe>` to that revision "
    "(README: Zero-downtime revisions). Rules: https://squawkhq.com/docs/rules"
)


class LintError(Exception):
    """The lint could not run (squawk missing or failing); one line for the user."""


def find_squawk() -> str:
    # The interpreter's own scripts directory first: `.venv/bin/pytest` runs without PATH.
    path = os.pathsep.join((sysconfig.get_path("scripts"), os.environ.get("PATH", "")))
    found = shutil.which("squawk", path=path)
    if found is None:
        raise LintError(
            "squawk not found: it comes with the dev dependencies (squawk-cli); install them"
        )
    return found


def alembic_config() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False  # leave the caller's logging alone
    return config


def offline_sql(config: Config, script: ScriptDirectory, revision: Script) -> str:
    """This revision's upgrade, as `alembic upgrade <down>:<rev> --sql` prints it.

    In-process (an `alembic` process costs about a second), on one ScriptDirectory
    that parses the revision files once. What `alembic.command.upgrade` does, except
    that the start may be a tuple: the command's "a:b" range cannot name a merge's parents.
    """
    buffer = io.StringIO()
    config.output_buffer = buffer

    def steps(heads: Any, context: Any) -> Any:
        return script._upgrade_revs(revision.revision, heads)

    with EnvironmentContext(
        config,
        script,
        fn=steps,
        as_sql=True,
        starting_rev=revision.down_revision,
        destination_rev=revision.revision,
    ):
        script.run_env()
    return VERSION_TABLE.sub("-- (Alembic's version table: not linted)\n", buffer.getvalue())


def acknowledged_rules(path: Path, shown: str) -> tuple[list[str], list[str]]:
    """The rules this revision file acknowledges, and a problem line per missing reason.

    A rule without a reason still silences squawk: the missing reason is the one problem.
    """
    rules, problems = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = ACKNOWLEDGEMENT.match(line)
        if match is None:
            continue
        rule = match["rule"]
        rules.append(rule)
        if not (match["reason"] or "").strip():
            problems.append(
                f"{shown}:{number}: `# squawk-ignore {rule}` needs a reason: "
                f"`# squawk-ignore {rule}: <why it is safe>`"
            )
    return rules, problems


def selected(script: ScriptDirectory, paths: Iterable[Path] | None) -> list[Script]:
    """Every revision after `start_after`, oldest first; or those whose files are in
    `paths` (pre-commit's)."""
    before = {rev.revision for head in start_after() for rev in script.walk_revisions("base", head)}
    revisions = [
        rev for rev in reversed(list(script.walk_revisions())) if rev.revision not in before
    ]
    if paths is None:
        return revisions
    wanted = {path.resolve() for path in paths}
    return [rev for rev in revisions if rev.path and Path(rev.path).resolve() in wanted]


def start_after() -> list[str]:
    """pyproject.toml's `[tool.migration-lint] start_after`: one revision id, or a list."""
    pyproject = ROOT / "pyproject.toml"
    tool = tomllib.loads(pyproject.read_text()).get("tool", {}) if pyproject.exists() else {}
    value = tool.get("migration-lint", {}).get("start_after", [])
    return [value] if isinstance(value, str) else list(value)


def shown_path(revision: Script) -> str:
    path = Path(revision.path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def lint(paths: Iterable[Path] | None = None) -> tuple[int, list[str]]:
    """How many revisions were linted, and one line per problem (none: all pass)."""
    squawk = find_squawk()
    config = alembic_config()
    try:
        script = ScriptDirectory.from_config(config)
        revisions = selected(script, paths)
    except Exception as exc:  # a broken revision file; the error names it
        raise LintError(f"cannot read the revisions: {exc!r}") from None
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="squawk-") as directory:
        files: dict[str, tuple[str, list[str]]] = {}  # SQL file -> revision, SQL lines
        for index, revision in enumerate(revisions):
            shown = shown_path(revision)
            rules, missing_reasons = acknowledged_rules(Path(revision.path), shown)
            problems += missing_reasons
            try:
                sql = offline_sql(config, script, revision)
            except Exception as exc:  # a revision's own code may raise anything
                problems.append(
                    f"{shown}: cannot render its offline SQL ({exc!r}); it must run under "
                    "`alembic upgrade --sql`: skip data reads when `op.get_context().as_sql`"
                )
                continue
            header = "".join(f"-- squawk-ignore-file {rule}\n" for rule in rules)
            sql_file = Path(directory) / f"{index:05d}.sql"
            sql_file.write_text(header + sql)
            files[str(sql_file)] = (shown, (header + sql).splitlines())
        violations = run_squawk(squawk, files) if files else []
    return len(revisions), problems + violations + ([HOW_TO_ACKNOWLEDGE] if violations else [])


def run_squawk(squawk: str, files: dict[str, tuple[str, list[str]]]) -> list[str]:
    config = ["--config", str(SQUAWK_CONFIG)] if SQUAWK_CONFIG.exists() else []
    result = subprocess.run(
        [squawk, "--reporter", "json", *config, *files],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        violations = json.loads(result.stdout)
    except json.JSONDecodeError:
        violations = None
    if result.returncode not in (0, 1) or not isinstance(violations, list):
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise LintError(
            f"squawk failed (exit {result.returncode}): {detail[0] if detail else 'no output'}"
        )
    lines = []
    for violation in violations:
        shown, sql_lines = files.get(violation["file"], (violation["file"], []))
        number = violation["line"]  # 0-based
        statement = sql_lines[number].strip() if number < len(sql_lines) else ""
        advice = " ".join(filter(None, (violation["message"], violation.get("help"))))
        lines.append(f"{shown}: {violation['rule_name']}: `{statement}`: {advice}")
    return lines


def main(argv: Sequence[str]) -> int:
    try:
        count, problems = lint([Path(arg) for arg in argv] if argv else None)
    except LintError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    if not problems:
        print(f"squawk: no problems in {count} revision(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
