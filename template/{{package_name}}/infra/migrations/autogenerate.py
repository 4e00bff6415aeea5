"""Autogenerate (`alembic revision --autogenerate`, `alembic check`). Template-owned.

- `autogenerating()`: whether this run compares the models with the database;
  only then does env.py import the models and the ENUM support.
- `enable_enum_autogenerate(include_name)`: alembic-postgresql-enum, so that
  autogenerate creates, alters and, in downgrades, drops PostgreSQL ENUM types
  (plain Alembic leaves them behind: alembic#89, #1612).
- `guard_autogenerate`, env.py's `process_revision_directives`: no revision that
  would drop every table because the model registry is empty, no empty revision,
  and an import of alembic-postgresql-enum in revisions that use its operations
  (`upgrade` does not import the library itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic import context
from alembic.operations.ops import MigrationScript
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import MetaData, inspect

# `op.add_enum_value` and `op.sync_enum_values` exist once the library is imported.
ENUM_LIBRARY_OPS = frozenset({"AddEnumValuesOp", "SyncEnumValuesOp"})
ENUM_LIBRARY_IMPORT = (
    "import alembic_postgresql_enum  # noqa: F401  (registers op.sync_enum_values)"
)


def autogenerating() -> bool:
    """True for `revision --autogenerate` and `check`, the runs that compare models.

    Alembic hands those (and only those) a revision context; call after configure.
    """
    return "revision_context" in context.get_context().opts


def enable_enum_autogenerate(include_name: Callable[[str], bool] | None = None) -> None:
    """Compare PostgreSQL ENUM types too; `include_name` hides the ones it returns False for."""
    import alembic_postgresql_enum  # only autogenerate needs it: `upgrade` starts faster

    alembic_postgresql_enum.set_configuration(
        alembic_postgresql_enum.Config(
            # Its ops are not in Alembic's stubs: revisions pass `mypy --strict`.
            add_type_ignore=True,
            include_name=include_name or (lambda name: True),
        )
    )


def guard_autogenerate(
    migration_context: MigrationContext, revision: Any, directives: list[MigrationScript]
) -> None:
    """Refuse destructive revisions from an empty model registry; skip empty ones."""
    metadata = migration_context.opts.get("target_metadata")
    connection = migration_context.connection
    if isinstance(metadata, MetaData) and not metadata.tables and connection is not None:
        version_table = migration_context._version.name
        tables = sorted(set(inspect(connection).get_table_names()) - {version_table})
        if tables:
            package = __name__.split(".")[0]
            raise CommandError(
                f"Base.metadata has no tables but the database has {len(tables)} "
                f"({', '.join(tables[:5])}{', ...' if len(tables) > 5 else ''}): "
                "autogenerate would drop them all. Is every model imported in "
                f"{package}/models/__init__.py? Nothing was written."
            )
    # Only `alembic revision --autogenerate` sets this; `alembic check` runs this
    # hook too and needs the (empty) directives to stay in place.
    config = migration_context.config
    if config is None or not getattr(config.cmd_opts, "autogenerate", False):
        return
    script = directives[0]
    if all(ops.is_empty() for ops in script.upgrade_ops_list):
        directives[:] = []
        print("No schema changes detected; no revision file written.")
        return
    ops = [op for ops in (*script.upgrade_ops_list, *script.downgrade_ops_list) for op in ops.ops]
    if any(type(op).__name__ in ENUM_LIBRARY_OPS for op in ops):
        script.imports.add(ENUM_LIBRARY_IMPORT)
