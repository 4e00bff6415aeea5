"""Your fixtures. Yours: rendered once, never overwritten by `copier update`.

The database fixtures (`database_url`, `empty_database_url`, `alembic_config`,
`postgres_server_url`) live in tests/db_fixtures.py, which the template keeps
current. They are imported here rather than named in `pytest_plugins` (pytest
refuses that outside the root conftest) or in pyproject's addopts (`-p` imports
before `pythonpath` applies): new fixtures arrive with updates and this file
stays as you left it. Define a fixture of the same name below to replace one.
"""

from .db_fixtures import *  # noqa: F403
