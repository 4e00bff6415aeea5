"""A command in a rendered service that runs while the test does something else:
its output lines collected as they come, its end bounded (killed past the bound)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from helpers import Service
from sqlalchemy.engine import URL


class Background:
    def __init__(
        self,
        service: Service,
        command: Sequence[str | Path],
        url: URL | str | None,
        *,
        bound: float,
        **env: str,
    ) -> None:
        self.bound = bound
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [str(part) for part in command],
            cwd=service.path,
            env=service.env(url, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self.lines.append(line.rstrip())

    def wait_for(self, text: str, count: int = 1) -> None:
        """Until `count` lines hold `text` (the command runs on)."""
        deadline = time.monotonic() + self.bound
        while sum(text in line for line in self.lines) < count:
            assert time.monotonic() < deadline and self.process.poll() is None, self.lines
            time.sleep(0.02)

    def finish(self) -> tuple[int, list[str], float]:
        """(exit code, output lines, seconds it ran)."""
        try:
            self.process.wait(self.bound)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.reader.join(self.bound)
        return self.process.returncode, self.lines, time.monotonic() - self.started
