"""The uvicorn processes that serve the app-path section's apps, one worker each.

Each listens on 127.0.0.1 at a free port, with the event loop and HTTP parser
named (`--loop`, `--http`): uvicorn's `auto` would take uvloop and httptools
whenever this environment has them, whatever the measured set-up ships. Its
access log (stdout) is on, as shipped, and dropped; its stderr goes to a log
file that a failure prints. Every process is stopped by its PID on exit.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .common import PYTHON

# (event loop, HTTP parser): what uvicorn's --loop and --http select.
Stack = tuple[str, str]
PLAIN_STACK: Stack = ("asyncio", "h11")  # `pip install uvicorn`, as most templates ship it
STANDARD_STACK: Stack = ("uvloop", "httptools")  # `pip install uvicorn[standard]`


def stack_name(stack: Stack) -> str:
    return "+".join(stack)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class App:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


class Apps:
    """uvicorn processes, one worker each on 127.0.0.1; all stopped by PID on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[App] = []

    def start(
        self, name: str, arguments: list[str], stack: Stack, cwd: Path, env: dict[str, str]
    ) -> App:
        port = free_port()
        log = self.logs / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [PYTHON, "-m", "uvicorn", *arguments, "--loop", stack[0], "--http", stack[1]]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        with log.open("wb") as errors:  # uvicorn's access log goes to stdout: dropped
            process = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=errors
            )
        app = App(name, port, process, log)
        self.started.append(app)
        return app

    def wait_ready(self, path: str, timeout: float = 90) -> None:
        """Every app answers `path` with 200, or this fails with the app's log."""
        deadline = time.monotonic() + timeout
        for app in self.started:
            while True:
                if app.process.poll() is not None:
                    raise SystemExit(f"{app.name} exited:\n{app.log.read_text()[-3000:]}")
                try:
                    status = get(app.port, path)
                except OSError:
                    status = 0
                if status == 200:
                    break
                if status or time.monotonic() > deadline:
                    raise SystemExit(
                        f"{app.name}: GET {path} gave {status or 'no answer'}:\n"
                        + app.log.read_text()[-3000:]
                    )
                time.sleep(0.1)

    def __enter__(self) -> Apps:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for app in self.started:
            app.process.terminate()
        for app in self.started:
            try:
                app.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                app.process.kill()
                app.process.wait()


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
