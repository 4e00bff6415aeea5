"""SIGTERM to the API as its image runs it: a request in flight finishes, new ones
are refused, and the lifespan disposes the engine, so that no connection of the
app is left on the server. With SHUTDOWN_DRAIN_SECONDS, /health/ready answers 503
from the signal on while /health/live answers 200, until the server stops accepting.

uvicorn runs with the rendered Dockerfile's own CMD arguments; its HEALTHCHECK
command is the probe. A process that exits closes its sockets anyway, so the
server is looked at after uvicorn has shut down but before the process exits:
the launcher keeps it alive until the test has looked.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TypeVar
from uuid import uuid4

import pytest
import yaml
from database import sql
from dockerfile import exec_form, last
from helpers import Service
from servers import free_port
from serving import api, get
from sqlalchemy.engine import URL

# The `uvicorn` command line, in a process that outlives it: uvicorn re-raises the
# SIGTERM it handled once it has shut down; this handler takes that one.
LAUNCHER = """
import signal, sys
import uvicorn.main
signal.signal(signal.SIGTERM, lambda *_: None)
uvicorn.main.main(sys.argv[1:], standalone_mode=False)
print("LAUNCHER: uvicorn returned", flush=True)
sys.stdin.read()  # until the test has looked at the server
"""
SECONDS = 30.0  # bound for each wait below
__all__ = ["api"]  # a fixture: the FastAPI render with serving.TEST_APP (its /sleep)
T = TypeVar("T")


def until(condition: Callable[[], T], what: str) -> T:
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"not within {SECONDS:.0f} s: {what}")


def test_sigterm_finishes_requests_in_flight_and_leaves_no_connection(
    api: Service, database_url: URL, postgres_server: URL
) -> None:
    command = exec_form(last(api.path / "Dockerfile", "CMD"))
    assert command[:2] == ["uvicorn", "app.main:app"], command
    probe = exec_form(last(api.path / "Dockerfile", "HEALTHCHECK"))
    assert probe[0] == "python", probe
    tag = f"shutdown-{uuid4().hex[:8]}"
    port = free_port()
    env = api.env(
        database_url.update_query_dict({"application_name": tag}),
        UVICORN_HOST="127.0.0.1",
        UVICORN_PORT=str(port),
    )

    def app_connections() -> list[tuple[str, str]]:
        rows = sql(
            postgres_server,
            "SELECT state, query FROM pg_stat_activity "
            f"WHERE application_name = '{tag}' AND datname = '{database_url.database}'",
        )[0]
        return [(row[0], row[1]) for row in rows]

    def run_probe() -> subprocess.CompletedProcess[str]:
        return api.run(sys.executable, *probe[1:], env=env, timeout=SECONDS)

    refused = run_probe()  # nothing listens yet
    assert refused.returncode == 1 and refused.stderr.startswith("unhealthy: "), refused
    server = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, "app.test_app:app", *command[2:]],
        cwd=api.path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []
    assert server.stdout is not None
    reader = threading.Thread(target=_forward, args=(server.stdout, lines))
    reader.start()
    try:
        until(lambda: _answers(f"http://127.0.0.1:{port}/health"), "/health answers 200")
        assert run_probe().returncode == 0
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(get, f"http://127.0.0.1:{port}/sleep?seconds=1")
            until(
                lambda: ("active", "SELECT pg_sleep($1)") in app_connections(),
                "the slow request's query runs on the server",
            )
            signalled = time.monotonic()
            server.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            # The listening socket is closed at once; the request in flight goes on.
            with pytest.raises(urllib.error.URLError, match="Connection refused"):
                get(f"http://127.0.0.1:{port}/health")
            assert not slow.done()
            answer = slow.result(timeout=SECONDS)
            assert (answer.status, answer.json) == (200, {"slept": 1.0})
            answered = time.monotonic() - signalled
        until(lambda: _drain(lines, output, "LAUNCHER: uvicorn returned"), "uvicorn shuts down")
        shut_down = time.monotonic() - signalled
        # The process is still alive: whatever the engine had not closed would show here.
        assert server.poll() is None
        assert app_connections() == []
        text = "\n".join(output)
        assert "Waiting for application shutdown." in text, text
        assert "Application shutdown complete." in text, text
        print(
            f"in-flight request answered {answered:.2f} s after SIGTERM; shut down after {shut_down:.2f} s"
        )
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(SECONDS)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            reader.join(SECONDS)
    assert server.returncode == 0


def test_readiness_turns_503_at_sigterm_and_liveness_stays_200_while_draining(
    api: Service, database_url: URL
) -> None:
    command = exec_form(last(api.path / "Dockerfile", "CMD"))
    port = free_port()
    drain = 1.5
    env = api.env(
        database_url,
        UVICORN_HOST="127.0.0.1",
        UVICORN_PORT=str(port),
        SHUTDOWN_DRAIN_SECONDS=str(drain),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.test_app:app", *command[2:]],
        cwd=api.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        until(lambda: _answers(f"{base}/health/ready"), "/health/ready answers 200")
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(get, f"{base}/sleep?seconds=3")
            time.sleep(0.5)  # the slow request reaches its pg_sleep
            signalled = time.monotonic()
            server.send_signal(signal.SIGTERM)
            seen: list[tuple[float, int, int]] = []  # seconds after SIGTERM, ready, live
            while True:
                try:
                    ready, live = (
                        get(f"{base}/health/ready").status,
                        get(f"{base}/health/live").status,
                    )
                except OSError:  # the drain is over: uvicorn stops accepting
                    break
                seen.append((time.monotonic() - signalled, ready, live))
                time.sleep(0.05)
                assert time.monotonic() - signalled < SECONDS
            refused = time.monotonic() - signalled
            assert not slow.done()  # still in flight when the server stopped accepting
            answer = slow.result(timeout=SECONDS)
            assert (answer.status, answer.json) == (200, {"slept": 3.0})
            answered = time.monotonic() - signalled
        server.wait(SECONDS)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert {(ready, live) for _, ready, live in seen} == {(503, 200)}, seen
    assert seen[0][0] < 0.2  # the first probe after the signal: 503 already
    assert drain <= refused < drain + 1.0 < answered, (refused, answered)
    assert "SIGTERM: /health/ready answers 503" in (server.stderr.read() if server.stderr else "")
    print(
        f"first 503 {seen[0][0]:.2f} s after SIGTERM ({len(seen)} probes, all 503/200); "
        f"refused after {refused:.2f} s; the request in flight answered after {answered:.2f} s"
    )


def _answers(url: str) -> bool:
    try:
        return get(url).status == 200
    except OSError:
        return False


def _forward(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _drain(lines: queue.Queue[str], output: list[str], marker: str) -> bool:
    while not lines.empty():
        output.append(lines.get().rstrip())
    return any(marker in line for line in output)


@pytest.mark.parametrize("drain", ["inf", "nan", "-1", "3000000"])
def test_a_drain_that_cannot_be_waited_out_stops_the_start_in_one_line(
    api: Service, drain: str
) -> None:
    """Read at the start, like every other setting: never an endless drain, never a
    traceback from the lifespan."""
    command = exec_form(last(api.path / "Dockerfile", "CMD"))
    env = api.env(
        "postgresql://app:pw@127.0.0.1:1/app",  # never reached: the start stops first
        UVICORN_HOST="127.0.0.1",
        UVICORN_PORT=str(free_port()),
        SHUTDOWN_DRAIN_SECONDS=drain,
    )
    started = api.run(sys.executable, "-m", *command, env=env, timeout=SECONDS)
    lines = (started.stdout + started.stderr).splitlines()
    assert started.returncode == 1, lines
    assert len(lines) == 1 and lines[0].startswith("invalid settings: SHUTDOWN_DRAIN_SECONDS"), (
        lines
    )


def test_readme_and_compose_allow_for_the_graceful_shutdown(api: Service) -> None:
    command = exec_form(last(api.path / "Dockerfile", "CMD"))
    grace = int(command[command.index("--timeout-graceful-shutdown") + 1])
    stop = yaml.safe_load((api.path / "compose.yaml").read_text())["services"]["app"][
        "stop_grace_period"
    ]
    assert int(stop.removesuffix("s")) > grace  # compose waits longer than uvicorn
    manual = " ".join((api.path / "docs/operations.md").read_text().split())
    assert f"finish for up to {grace} s" in manual
    assert f"`stop_grace_period: {stop}`" in manual
