"""How Alembic treats this service's schema.

User-owned: rendered once, never overwritten by `copier update`. alembic/env.py
(template-owned) reads these names; change them here, not there.
"""

from typing import Any, Literal

from sqlalchemy.sql.schema import SchemaItem

# Extra keyword arguments for alembic's `context.configure`, online and offline,
# e.g. {"include_schemas": True} or {"compare_server_default": False}.
CONFIGURE_OPTIONS: dict[str, Any] = {}

ObjectType = Literal[
    "schema", "table", "column", "index", "unique_constraint", "foreign_key_constraint"
]


def include_object(
    obj: SchemaItem,
    name: str | None,
    type_: ObjectType,
    reflected: bool,
    compare_to: SchemaItem | None,
) -> bool:
    """Return False to hide an object from autogenerate and `alembic check`.

    Example: tables another tool owns (`return not (type_ == "table" and name == "spatial_ref_sys")`).
    """
    return True


def include_enum(name: str) -> bool:
    """Return False to keep autogenerate away from a PostgreSQL ENUM type.

    ENUM types are compared by alembic-postgresql-enum, which does not ask
    `include_object`: hide here the types of tables hidden above, or types another
    tool owns, or autogenerate proposes to drop them as unused.
    """
    return True
