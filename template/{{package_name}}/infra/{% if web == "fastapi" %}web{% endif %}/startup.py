"""Invalid settings end the server's start in one line. Template-owned.

main.py calls `exit_on_invalid_settings(get_settings)` before it builds the app, so
`uvicorn <package>.main:app` (and the image's command) stops while importing it:
the one line of `settings_error_line`, exit code 1, no traceback (uvicorn lets a
SystemExit from the import end it). Read later, in the lifespan, the same error
reaches the log as a traceback (Starlette formats it) before "Application startup
failed".

Tests read the settings per test, after importing the app (tests/infra/db_fixtures.py
points them at a database of its own), so the fixtures turn this check off.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError
from pydantic_settings import SettingsError

from ..settings import settings_error_line

_check = {"at_import": True}


def check_settings_at_import(enabled: bool) -> None:
    """Off in the test fixtures; on everywhere else."""
    _check["at_import"] = enabled


def exit_on_invalid_settings(read_settings: Callable[[], object]) -> None:
    """Read the settings now; SystemExit with one line if they are invalid."""
    if not _check["at_import"]:
        return
    try:
        read_settings()
    except ValidationError as exc:
        raise SystemExit(settings_error_line(exc)) from None
    except SettingsError as exc:  # a source that cannot be read (.env, /run/secrets)
        raise SystemExit(f"invalid settings: {str(exc).splitlines()[0]}") from None
