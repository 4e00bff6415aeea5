"""Your fixtures. Yours: rendered once, never overwritten by `copier update`.

The database fixtures (`db_session`, `database_url`, `empty_database_url`,
`alembic_config`, `postgres_server_url`, ...) live in tests/infra/db_fixtures.py,
which the template keeps current; the import below brings in all of them, new
ones included. An import, not `pytest_plugins` (pytest refuses it outside the root
conftest) nor `-p` in pyproject's addopts (silently lost when addopts is
overridden, e.g. `-o addopts=`). To change a fixture, define one with the same
name below the import.
"""

from .infra.db_fixtures import *  # noqa: F403
