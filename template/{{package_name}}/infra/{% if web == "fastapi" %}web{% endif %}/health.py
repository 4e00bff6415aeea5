"""GET /health: is the service up, and can it reach its database? Template-owned.

Probes: /health/live (the process answers: liveness and startup, never the
database) and /health/ready (readiness: /health's answer, 503 from SIGTERM on,
and 503 while the standby is down under DATABASE_READ_STRICT). /health itself
stays as it was, for monitors and humans.
"""

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import text

from ..errors import describe_database_error
from ..read_sessions import ReadSessions, ReplicaState
from .database import EngineDep, ReadSessionsDep
from .shutdown import is_draining

logger = logging.getLogger(__name__)
router = APIRouter()

# A health probe must answer quickly, whatever the connect timeout is.
PROBE_TIMEOUT_SECONDS = 3.0
# Their 503 has the 200's shape, not errors.py's `{"detail": ...}`: the OpenAPI document says so.
DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": dict[str, str], "description": "Unavailable, or draining"}
}


@router.get("/health", responses=DOWN)
async def health(
    engine: EngineDep, read_sessions: ReadSessionsDep, response: Response
) -> dict[str, str]:
    # The standby only adds "replica": reads fall back to the primary without it.
    replica = await replica_state(read_sessions)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # whatever it is, the answer is "down", never a 500
        # Details go to the log (without the password), never to the caller.
        logger.warning("health check: %s", describe_database_error(exc, engine.url))
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "database": "down", "replica": replica}
    return {"status": "ok", "database": "up", "replica": replica}


async def replica_state(read_sessions: ReadSessions) -> ReplicaState:
    """The standby as reads see it; read_sessions.py logs why it is down, once."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            return await read_sessions.replica_state()
    except TimeoutError:
        return "down"
    except Exception as exc:  # unforeseen: down all the same, never a 500
        logger.warning("health check: read replica: %s", describe_database_error(exc))
        return "down"


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process answers. A database outage must not restart every pod."""
    return {"status": "ok"}


@router.get("/health/ready", responses=DOWN)
async def ready(
    request: Request, engine: EngineDep, read_sessions: ReadSessionsDep, response: Response
) -> dict[str, str]:
    if is_draining(request.app):  # SIGTERM: the load balancer takes us out first
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "draining"}
    answer = await health(engine, read_sessions, response)
    if read_sessions.strict and answer["replica"] == "down":  # reads would fail
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        answer["status"] = "unavailable"
    return answer
