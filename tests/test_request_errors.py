"""Request errors in a served FastAPI service (issue 19): a failed statement's log line
shows its SQL without its bound values; a pool with no free connection answers 503
JSON within its timeout; a password with a raw `,` and `:` logs in as libpq reads it;
and a request through `SessionDep` answers 503 JSON while PostgreSQL is stopped, 200
after it restarts, from the same process (a cluster of this module's own, with
password logins, stopped and started by PID). compose.yaml's role and ports too."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from helpers import Service
from servers import Cluster, private_cluster
from serving import SECONDS, api, assert_clean, get, live, serving

PASSWORD = "Pw7-secret"
# libpq splits user-info at the first `:` and allows `,` in the password.
COMMA_PASSWORD = "Kx7,Wq2:Zr5"
DEV_DATABASE = "my_service_dev"  # the default render's
__all__ = ["api", "live"]  # fixtures


@pytest.mark.parametrize("log_parameters", ["false", "true"])
def test_a_failed_statement_is_logged_once_with_its_sql_not_its_values(
    api: Service, live: str, log_parameters: str
) -> None:
    env = api.env(live, DATABASE_LOG_PARAMETERS=log_parameters)
    with serving(api, env, "app.test_app:app") as (base, output):
        answer = get(f"{base}/fail")
        refused = get(f"{base}/divide")  # a data exception (22012): the value's fault
    assert (answer.status, answer.json) == (500, {"detail": "internal server error"})
    assert refused.status == 422 and "S3cr-param" not in refused.body, refused
    log = output()
    assert log.count("GET /fail: 500, unhandled ProgrammingError") == 1, log  # once, in full
    assert "[SQL: SELECT no_such_column" in log, log  # the statement, for whoever debugs it
    assert "GET /divide: 422, the database refused a value: division by zero" in log, log
    # Only the 500's own traceback may show the values, and only when asked to.
    assert ("S3cr-param" in log) == (log_parameters == "true"), log


def test_no_free_pooled_connection_is_a_503_within_the_pool_timeout(
    api: Service, live: str
) -> None:
    timeout = 1.0
    env = api.env(
        live,
        DATABASE_POOL_SIZE="1",
        DATABASE_POOL_MAX_OVERFLOW="0",
        DATABASE_POOL_TIMEOUT_SECONDS=str(timeout),
    )
    with serving(api, env, "app.test_app:app") as (base, output), ThreadPoolExecutor(1) as pool:
        holder = pool.submit(get, f"{base}/sleep?seconds=3")  # takes the only connection
        time.sleep(0.5)
        started = time.monotonic()
        waiting = get(f"{base}/items/1")
        waited = time.monotonic() - started
        assert (waiting.status, waiting.json) == (503, {"detail": "database unavailable"})
        assert waiting.retry_after.isdigit()
        assert timeout <= waited < timeout + 1, waited
        assert holder.result(timeout=SECONDS).status == 200
    assert_clean(output(), ())


# A cluster of this module's own, with password logins, stopped and started by its
# PID: the other tests' server is never stopped. Its application role and database
# are made as compose.yaml makes them.
@pytest.fixture(scope="module")
def password_cluster(api: Service) -> Iterator[Cluster]:
    compose = yaml.safe_load((api.path / "compose.yaml").read_text())
    with private_cluster("no-leaks", password=PASSWORD) as cluster:
        cluster.psql(f"CREATE DATABASE {DEV_DATABASE}")  # the image's POSTGRES_DB
        cluster.psql(compose["configs"]["app-role"]["content"], database=DEV_DATABASE)
        cluster.psql(f"ALTER ROLE app PASSWORD '{COMMA_PASSWORD}'")
        yield cluster


def app_url(cluster: Cluster) -> str:
    # Written raw, as a provider's console might print it: libpq's reading applies.
    return f"postgresql://app:{COMMA_PASSWORD}@127.0.0.1:{cluster.port}/{DEV_DATABASE}"


@pytest.mark.xdist_group("no_leaks_cluster")
def test_a_password_with_a_raw_comma_and_colon_logs_in(
    api: Service, password_cluster: Cluster
) -> None:
    env = api.env(app_url(password_cluster))
    output = api.ok(api.run(sys.executable, "-m", "app.infra.migrate", env=env))
    output += api.ok(api.alembic("check", env=env))
    assert_clean(output, ("Kx7", "Wq2", "Zr5"))
    # compose.yaml's role: no superuser, yet the migrations ran as it (it owns the database).
    owner = "SELECT tableowner FROM pg_tables WHERE tablename = 'item'"
    assert password_cluster.psql(owner, database=DEV_DATABASE) == "app"
    assert password_cluster.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'app'") == "f"


def test_compose_connects_as_the_application_role_on_this_machine_only(api: Service) -> None:
    compose = yaml.safe_load((api.path / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", [])), name
        url = service.get("environment", {}).get("DATABASE_URL")
        assert url is None or url.startswith("postgresql+asyncpg://app:"), url
    gitignore = (api.path / ".gitignore").read_text().splitlines()
    assert {".env", ".env.*", "!.env.example"} <= set(gitignore)


@pytest.mark.xdist_group("no_leaks_cluster")
def test_a_stopped_database_is_a_503_then_the_same_process_recovers(
    api: Service, password_cluster: Cluster
) -> None:
    timeout = 2.0
    env = api.env(
        app_url(password_cluster),
        DATABASE_CONNECT_TIMEOUT_SECONDS=str(timeout),
        DATABASE_POOL_TIMEOUT_SECONDS=str(timeout),
    )
    api.ok(api.run(sys.executable, "-m", "app.infra.migrate", env=env))
    with serving(api, env, "app.test_app:app") as (base, output), ThreadPoolExecutor(1) as pool:
        created = get(f"{base}/items", json.dumps({"name": "lamp"}).encode())
        assert created.status == 201, created
        item = created.json
        assert get(f"{base}/items/{item['id']}").json == item

        # A statement in flight when the server shuts down (57P01), then none to connect to.
        in_flight = pool.submit(get, f"{base}/sleep?seconds=10")
        time.sleep(0.5)
        password_cluster.stop()
        assert (in_flight.result(SECONDS).status, in_flight.result().json) == (
            503,
            {"detail": "database unavailable"},
        )
        started = time.monotonic()
        down = get(f"{base}/items/{item['id']}")
        waited = time.monotonic() - started
        assert (down.status, down.json) == (503, {"detail": "database unavailable"})
        assert down.retry_after.isdigit()
        assert waited < timeout + 1, waited
        assert get(f"{base}/health").status == 503

        password_cluster.start()
        deadline = time.monotonic() + SECONDS
        while (again := get(f"{base}/items/{item['id']}")).status != 200:
            assert again.status == 503 and time.monotonic() < deadline, again
            time.sleep(0.1)
        assert again.json == item
    log = output()
    assert "database unavailable" in log, log
    assert_clean(log, ("Kx7", "Wq2", "Zr5", PASSWORD))
    print(f"503 after {waited:.2f} s with the server stopped")
