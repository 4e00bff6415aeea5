"""Pre-deploy revisions that would break the release still serving. Template-owned.

Part of the migration lint (migration_lint.py: the suite, `make lint-migrations`,
pre-commit). A pre-deploy revision runs while the previous release serves on the new
schema (docs/rolling-deploys.md), so each of these belongs in a post-deploy revision
(`deploy_phase = "post-deploy"`), or needs an expand step first:

- what squawk has a rule for, in the SQL of `op.*` calls and of `op.execute` alike:
  a dropped or renamed column or table, a type change, a dropped NOT NULL
  (N_MINUS_1_RULES; their lines say so in a pre-deploy revision, and they are off in a
  post-deploy one). A NOT NULL column without a default stays squawk's
  `adding-required-field` in both: it fails on any table with rows;
- what squawk has no rule for, read from Alembic's operations as the revision makes
  them (`op.alter_column(..., nullable=False)`, `op.create_check_constraint(...)`...):
  `set-not-null`, `new-constraint` (a constraint or unique index on a table the
  revision did not create: it rejects the previous release's writes, NOT VALID too),
  `enum-value-removed` (alembic-postgresql-enum's `sync_enum_values`, which
  autogenerate writes when a value goes away or is renamed).

Not seen: what raw SQL in `op.execute(...)` does beyond squawk's rules (a SET NOT NULL
or ADD CONSTRAINT written as SQL). Review those; a revision that does a flagged thing
on purpose says so in its file, with why, one check a line:

    # deploy-safe new-constraint: the table is written by this release only
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from alembic.operations import Operations, ops
from alembic_postgresql_enum.operations.sync_enum_values import SyncEnumValuesOp

# squawk's rules about what the code still running sees (https://squawkhq.com/docs/rules).
N_MINUS_1_RULES = (
    "ban-drop-column",
    "ban-drop-table",
    "renaming-column",
    "renaming-table",
    "changing-column-type",
    "ban-drop-not-null",
    # what alembic-postgresql-enum's sync_enum_values does to the type it replaces
    "renaming-object",
    "ban-drop-type",
    "ban-drop-function",
)
MARKER = "deploy-safe"
MOVE_IT = (
    'move it to a post-deploy revision (`deploy_phase = "post-deploy"`) or expand first '
    "(docs/rolling-deploys.md)"
)
HOW_TO_ACKNOWLEDGE = (
    f"Safe while the previous release serves? Add `# {MARKER} <check>: <why>` to that "
    "revision (docs/rolling-deploys.md)"
)


@contextmanager
def recorded_operations() -> Iterator[list[ops.MigrateOperation]]:
    """Every `op.*` operation invoked in the block, in order: what the revisions asked
    for, before it became SQL. Operations.invoke is where each `op.*` call arrives."""
    seen: list[ops.MigrateOperation] = []
    invoke, sync = Operations.invoke, SyncEnumValuesOp.sync_enum_values

    def recording(self: Operations, operation: ops.MigrateOperation) -> Any:
        seen.append(operation)
        return invoke(self, operation)

    # `op.sync_enum_values` runs at once, without an operation: its arguments say it all.
    def syncing(cls: type, operations: Operations, *args: Any, **kwargs: Any) -> Any:
        named = inspect.signature(sync).bind(operations, *args, **kwargs).arguments
        values = list(named["new_values"])
        seen.append(SyncEnumValuesOp(named["enum_schema"], named["enum_name"], [], values, []))
        return sync(operations, *args, **kwargs)

    with (
        mock.patch.object(Operations, "invoke", recording),
        mock.patch.object(SyncEnumValuesOp, "sync_enum_values", classmethod(syncing)),
    ):
        yield seen


def breaking_operations(operations: list[ops.MigrateOperation]) -> Iterator[tuple[str, str]]:
    """(check, what it does) for each operation the previous release cannot live with."""
    created = {op.table_name for op in operations if isinstance(op, ops.CreateTableOp)}
    for op in operations:
        if isinstance(op, ops.AlterColumnOp) and op.modify_nullable is False:
            yield (
                "set-not-null",
                f"sets {op.table_name}.{op.column_name} NOT NULL: "
                "the release still serving may write NULL there",
            )
        elif (
            isinstance(op, ops.AddConstraintOp | ops.CreateIndexOp)
            and (table := _table_of(op)) not in created
        ):
            if isinstance(op, ops.CreateIndexOp) and not op.unique:
                continue
            also = "" if isinstance(op, ops.CreateIndexOp) else " (NOT VALID too checks new rows)"
            yield (
                "new-constraint",
                f"adds {_kind_of(op)} {_name_of(op)} to existing table {table}: it rejects "
                f"rows the release still serving writes{also}",
            )
        elif isinstance(op, SyncEnumValuesOp):
            # Autogenerate writes it when a value goes away or is renamed (a value added:
            # `add_enum_value`, which is safe); the values it had are the database's.
            yield (
                "enum-value-removed",
                f"replaces the values of enum {op.name} with {op.new_values}: the release "
                "still serving may write one that is gone",
            )


def _table_of(op: ops.MigrateOperation) -> str:
    return str(getattr(op, "table_name", None) or getattr(op, "source_table", ""))


def _kind_of(op: ops.MigrateOperation) -> str:
    if isinstance(op, ops.CreateIndexOp):
        return "unique index"
    kind = type(op).__name__.removeprefix("Create").removesuffix("Op")
    return re.sub(r"(?<!^)(?=[A-Z])", " ", kind).lower()  # CheckConstraint: check constraint


def _name_of(op: ops.MigrateOperation) -> str:
    name = getattr(op, "index_name", None) or getattr(op, "constraint_name", None)
    return str(name) if name else "(unnamed)"


def phase_problems(
    shown: str, operations: list[ops.MigrateOperation], acknowledged: list[str]
) -> list[str]:
    """One line per breaking operation of a pre-deploy revision not acknowledged."""
    return [
        f"{shown}: {check}: pre-deploy revision {what}; {MOVE_IT}"
        for check, what in breaking_operations(operations)
        if check not in acknowledged
    ]


def squawk_advice(rule: str) -> str:
    """What a pre-deploy revision's line for one of squawk's rules adds."""
    return (
        f" Pre-deploy: the release still serving breaks on it; {MOVE_IT}."
        if (rule in N_MINUS_1_RULES)
        else ""
    )
