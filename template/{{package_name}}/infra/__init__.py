"""The template's part of this service. Template-owned: `copier update` keeps every
file in this folder current; your code goes outside it (README: "Where things go").

Layers, each importing only those above it in this list:
- database_url.py, libpq.py, url_text.py: a PostgreSQL URL, parsed once into what
  engines need, and shown without its secrets;
- settings.py: `DatabaseSettings`, which core/config.py's `Settings` extends;
- errors.py: one readable line for a database failure;
- connection_checks.py: what the pool checks before it hands out a connection;
- stale_statements.py: a statement another process's migration made stale, run again;
- engines.py, read_sessions.py: the app's engines, sessions and read-only sessions;
- migrations/: what alembic/env.py calls; migrate.py, the deploy's migrate step;
- tracing.py, logs.py (observability=otel): traces of the engines, log lines;
- backfill/: batched, throttled, resumable backfills of the service's own
  backfills.py, `python -m <package>.infra.backfill` (docs/backfills.md);
- web/ (FastAPI): lifespan, session dependencies, /health and the probes, JSON
  errors, the one-line exit on invalid settings, shutdown.py (SIGTERM's drain),
  observability.py (otel: request ids, traces, /metrics); healthcheck.py, the
  image's HEALTHCHECK command.
"""
