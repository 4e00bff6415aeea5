"""What alembic/env.py calls, each named for what it does. Template-owned.

A migration run here is Alembic's async env.py plus these calls:

- `migration_lock(connection)`: one run at a time per database (a polled advisory
  lock, waited for at most MIGRATION_LOCK_WAIT_SECONDS), lock and statement timeouts
  for the whole run, a read-only standby refused, `autocommit_block()` refused where
  the lock is transaction-scoped.
- `connect_when_reachable(engine)`: the run's connection; the migrate step has it
  wait for a database that is not reachable yet.
- `sync_connection(handed_in)`: a connection the caller handed in.
- `run_outside_event_loop(coroutine)`: `asyncio.run()`, also inside a running loop.
- `write_timeouts_into_script()`: the same timeouts in `alembic upgrade --sql`.
- `autogenerating()`, `enable_enum_autogenerate(...)`, `guard_autogenerate`: what
  only `revision --autogenerate` and `check` need.
- `lock_timeout_retries()`: attempts at the run; a lock timeout (55P03) is retried
  after a pause, the whole transaction or, in an `autocommit_block()`, the statement.
- `configure_logging(config)`, `failures_as_one_line()`: what a run prints.
"""

from .autogenerate import autogenerating, enable_enum_autogenerate, guard_autogenerate
from .connect import connect_when_reachable, run_outside_event_loop, sync_connection
from .lock import migration_lock, write_timeouts_into_script
from .output import configure_logging, failures_as_one_line
from .retries import lock_timeout_retries

__all__ = [
    "autogenerating",
    "configure_logging",
    "connect_when_reachable",
    "enable_enum_autogenerate",
    "failures_as_one_line",
    "guard_autogenerate",
    "lock_timeout_retries",
    "migration_lock",
    "run_outside_event_loop",
    "sync_connection",
    "write_timeouts_into_script",
]
