"""SIGTERM: /health/ready answers 503 at once, then uvicorn shuts down. Template-owned.

uvicorn stops accepting connections as soon as it handles SIGTERM, so a load
balancer that asks /health/ready would only see refused connections. This
handler goes in front of uvicorn's: it marks the app as draining (readiness 503,
liveness still 200), keeps serving for SHUTDOWN_DRAIN_SECONDS, then hands the
signal to uvicorn, which lets requests in flight finish (--timeout-graceful-shutdown)
before the lifespan disposes the engine. A second SIGTERM, or a drain of 0 (the
default: `--reload` restarts and `docker stop` stay immediate), hands it over at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI

from ..settings import EnvironmentSettings, Seconds

logger = logging.getLogger(__name__)


class ShutdownSettings(EnvironmentSettings):
    # After SIGTERM, how long the server keeps serving while /health/ready answers 503.
    SHUTDOWN_DRAIN_SECONDS: Seconds = 0.0


class Drain:
    """Whether the app is draining, and the SIGTERM handler that starts it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.draining = False
        self._previous: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def install(self) -> None:
        # Signals reach the main thread only (TestClient runs the app on another one).
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def uninstall(self) -> None:
        if self._timer is not None:  # the lifespan ended first: nothing left to hand over
            self._timer.cancel()
        if self._loop is not None and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._previous)
        self._loop = None

    def _on_sigterm(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or not self.seconds or self._loop is None:
            self.draining = True
            self._hand_over(sig, frame)
            return
        self.draining = True
        # A signal handler may interrupt the loop anywhere: only the thread-safe call
        # (as asyncio.run's own SIGINT handler does); the timer is set from the loop.
        self._loop.call_soon_threadsafe(self._drain_then_hand_over, sig, frame)

    def _drain_then_hand_over(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is None:
            return
        logger.warning(
            "SIGTERM: /health/ready answers 503; serving %g s more, then shutting down",
            self.seconds,
        )
        self._timer = self._loop.call_later(self.seconds, self._hand_over, sig, frame)

    def _hand_over(self, sig: int, frame: FrameType | None) -> None:
        previous = self._previous
        if callable(previous):  # uvicorn's handler: graceful shutdown
            previous(sig, frame)
        elif previous == signal.SIG_DFL:  # no server's handler: as if we were not here
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)


@asynccontextmanager
async def drain_on_sigterm(app: FastAPI) -> AsyncIterator[Drain]:
    """For the lifespan: `app.state.drain` is what /health/ready asks."""
    drain = Drain(ShutdownSettings().SHUTDOWN_DRAIN_SECONDS)
    drain.install()
    app.state.drain = drain
    try:
        yield drain
    finally:
        drain.uninstall()


def is_draining(app: FastAPI) -> bool:
    drain: Drain | None = getattr(app.state, "drain", None)
    return drain is not None and drain.draining
