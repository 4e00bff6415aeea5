"""A rendered FastAPI service, served by uvicorn for a test: its address, what it
printed, each answer's status, JSON and Retry-After; and the check that output holds
no secret and no traceback. Shared by test_no_leaks.py and test_request_errors.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from helpers import Service, render
from servers import free_port
from sqlalchemy.engine import URL

SECONDS = 20.0  # bound of every wait


def assert_clean(output: str, secrets: tuple[str, ...]) -> None:
    assert "Traceback" not in output, output
    for secret in secrets:
        assert secret not in output and quote(secret, safe="") not in output, (secret, output)


@dataclass
class Answer:
    status: int
    body: str
    retry_after: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def get(address: str, data: bytes | None = None) -> Answer:
    request = urllib.request.Request(
        address, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=SECONDS) as response:
            return Answer(response.status, response.read().decode(), "")
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read().decode(), exc.headers.get("Retry-After", ""))


@contextmanager
def serving(
    service: Service, env: dict[str, str], app: str = "app.main:app", options: tuple[str, ...] = ()
) -> Iterator[Any]:
    """`uvicorn <app> <options>` on a free port, until the block ends; yields its address
    and a function that returns everything it printed (complete once it has stopped)."""
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", app),
            *("--host", "127.0.0.1", "--port", str(port), *options),
        ],
        cwd=service.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed: list[str] = []
    try:
        deadline = time.monotonic() + SECONDS
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "uvicorn did not answer"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", lambda: "".join(printed)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            printed.append(server.communicate(timeout=SECONDS)[0])
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


TEST_APP = '''"""Test-only: the app, plus statements that fail with a bound value (a bug's
and a refused value's), and a slow one that holds its connection."""

from sqlalchemy import text

from app.infra.web.database import ReadSessionDep, SessionDep
from app.main import create_app

app = create_app()


@app.get("/fail")
async def fail(session: SessionDep) -> None:
    await session.execute(
        text("SELECT no_such_column FROM pg_class WHERE relname = :token"), {"token": "S3cr-param"}
    )


@app.get("/divide")
async def divide(session: SessionDep) -> None:
    await session.execute(
        text("SELECT 1 / 0 WHERE CAST(:token AS text) IS NOT NULL"), {"token": "S3cr-param"}
    )


@app.get("/read")
async def read(session: ReadSessionDep) -> dict[str, int]:
    return {"one": (await session.execute(text("SELECT 1"))).scalar_one()}


@app.get("/sleep")
async def sleep(session: SessionDep, seconds: float) -> dict[str, float]:
    await session.execute(text("SELECT pg_sleep(:seconds)"), {"seconds": seconds})
    return {"slept": seconds}
'''


@pytest.fixture(scope="session")  # one render per worker: the modules that use it only read it
def api(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Service:
    service = Service(
        render(copier_template, tmp_path_factory.mktemp("no-leaks") / "svc", web="fastapi")
    )
    service.write("app/test_app.py", TEST_APP)
    return service


@pytest.fixture
def live(api: Service, database_url: URL) -> str:
    """A database of the session's server at head (the item table)."""
    text = database_url.render_as_string(hide_password=False)
    api.ok(api.run(sys.executable, "-m", "app.infra.migrate", database_url=text))
    return text
