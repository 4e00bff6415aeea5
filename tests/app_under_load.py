"""A rendered FastAPI service under uvicorn as its image runs it (the Dockerfile's CMD),
and threads that keep requests going at it (tests/test_request_path.py)."""

from __future__ import annotations

import http.client
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from dockerfile import exec_form, last
from helpers import Service
from servers import free_port
from sqlalchemy.engine import URL

SECONDS = 30.0  # bound on each wait for an app


class App:
    """The service under uvicorn with its image's CMD arguments, stopped by its PID."""

    def __init__(self, service: Service, database: URL, **settings: str) -> None:
        command = exec_form(last(service.path / "Dockerfile", "CMD"))
        assert command[0] == "uvicorn", command
        self.port = free_port()
        env = service.env(
            database, UVICORN_HOST="127.0.0.1", UVICORN_PORT=str(self.port), **settings
        )
        self.log = service.path / f"uvicorn-{self.port}.log"
        with self.log.open("wb") as errors:  # the access log (stdout) is dropped
            self.process = subprocess.Popen(
                [sys.executable, "-m", *command],
                cwd=service.path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        deadline = time.monotonic() + SECONDS
        while get(self.port, "/health")[0] != 200:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(SECONDS)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def get(port: int, path: str, timeout: float = SECONDS) -> tuple[int, str]:
    """(status, body); status 0 when the app did not answer at all."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    except OSError as exc:
        return 0, repr(exc)
    finally:
        connection.close()


@dataclass
class Answer:
    path: str
    started: float
    seconds: float
    status: int  # 0: no answer


class Load:
    """Four threads that GET the paths (each followed by an id from 1 to `ids`), one
    request after the other each, until stopped; every answer kept."""

    def __init__(self, port: int, paths: tuple[str, ...], ids: int, timeout: float) -> None:
        self.port, self.paths, self.ids, self.timeout = port, paths, ids, timeout
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(4)]

    def _run(self, number: int) -> None:
        ids = random.Random(number)
        while not self._stop.is_set():
            path = self.paths[ids.randrange(len(self.paths))]
            started = time.monotonic()
            status, _ = get(self.port, f"{path}{ids.randint(1, self.ids)}", timeout=self.timeout)
            self.answers.append(Answer(path, started, time.monotonic() - started, status))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + SECONDS)
