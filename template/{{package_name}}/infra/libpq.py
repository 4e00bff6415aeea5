"""libpq's connection parameters, as asyncpg's `connect()` keywords.

Template-owned: `copier update` keeps this file current. Called by
database_url.py only, once per URL, when settings are read.

Each libpq parameter is handled in one of the ways the tables below say; an
unknown one is refused. Messages name the setting and the parameter, never the
URL, so a password cannot leak through them.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

# Handed to asyncpg's own libpq-compatible parser, as a DSN holding only these:
# it implements libpq's TLS rules (verify-ca does not check the host name,
# verify-full does; allow and prefer fall back to plain TCP) and reads the files.
_TO_ASYNCPG_PARSER = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
    }
)
# Turned into asyncpg arguments here: server settings, connect timeout.
_TRANSLATED = frozenset(
    {"options", "application_name", "fallback_application_name", "connect_timeout"}
)
# Kept in the URL, where SQLAlchemy's dialect reads them (`host` may repeat: several hosts).
KEPT = frozenset({"host", "target_session_attrs", "prepared_statement_cache_size"})
# Checked, then dropped: see _check_channel_binding; asyncpg speaks UTF8 only.
_CHECKED = frozenset({"channel_binding", "client_encoding"})
# Client-side knobs asyncpg has no equivalent for and that weaken no guarantee:
# dropped (asyncpg always sends SNI; TCP keepalives stay the OS defaults).
_DROPPED = frozenset(
    {
        "gssencmode",
        "sslsni",
        "sslcompression",
        "sslcertmode",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "load_balance_hosts",
    }
)
# asyncpg's own names, which SQLAlchemy users already put in URLs (`?ssl=require`).
ASYNCPG_NAMES = {"ssl": str, "statement_cache_size": int, "command_timeout": float}
# Files read at connect time: checked when the settings are read, to fail early and clearly.
_FILES = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
_KNOWN = _TO_ASYNCPG_PARSER | _TRANSLATED | KEPT | _CHECKED | _DROPPED | set(ASYNCPG_NAMES)

_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
_SETTING = re.compile(r"(?:-c|--)([A-Za-z_][\w.]*)=(.*)", re.DOTALL)
# PostgreSQL keeps its timeouts in milliseconds in an int: 2147483647 ms, 24.8 days.
# The bound of every number of seconds here and in the settings.
MAX_SECONDS = 2_147_483


def asyncpg_arguments(parameters: Mapping[str, str | tuple[str, ...]], name: str) -> dict[str, Any]:
    """`asyncpg.connect()` keywords from a URL's query; ValueError for an unknown or bad one.

    `name` is the setting's, for messages.
    """
    query = {key: last(value) for key, value in parameters.items()}
    unknown = sorted(set(query) - _KNOWN)
    if unknown:
        raise ValueError(
            f"{name} has parameter '{unknown[0]}', which this service does not know; "
            "remove it (libpq's connection parameters are understood, and asyncpg's "
            "ssl, statement_cache_size and command_timeout)"
        )
    arguments: dict[str, Any] = {
        key: _number(name, key, query[key], kind)
        for key, kind in ASYNCPG_NAMES.items()
        if key in query and kind is not str
    }
    parser = {key: query[key] for key in _TO_ASYNCPG_PARSER & query.keys()}
    if "ssl" in query:
        parser.setdefault("sslmode", query["ssl"])
    _check_choice(name, "sslmode", parser.get("sslmode"), _SSLMODES)
    _check_choice(name, "target_session_attrs", query.get("target_session_attrs"), _SESSION_ATTRS)
    if parser.get("sslrootcert") == "system":
        # libpq 16+: the system's trusted CAs, and nothing weaker than verify-full.
        if parser.setdefault("sslmode", "verify-full") != "verify-full":
            raise ValueError(
                f"{name}: sslrootcert=system needs sslmode=verify-full, not "
                f"sslmode={parser['sslmode']} (libpq refuses it too)"
            )
        arguments["ssl"] = _system_trust()
    elif parser:
        arguments["dsn"] = "postgresql://?" + "&".join(
            f"{key}={quote(value, safe='')}" for key, value in sorted(parser.items())
        )
    _check_channel_binding(name, query.get("channel_binding"), parser.get("sslmode"))
    if query.get("client_encoding", "UTF8").upper().replace("-", "") != "UTF8":
        raise ValueError(f"{name}: client_encoding must be UTF8 (asyncpg speaks only UTF8)")
    server_settings = _server_settings(name, query)
    if server_settings:
        arguments["server_settings"] = server_settings
    if "connect_timeout" in query:
        # libpq: whole seconds, per host, 0 = wait forever (then the setting's bound holds).
        seconds = _number(name, "connect_timeout", query["connect_timeout"], int)
        if seconds:
            arguments["timeout"] = max(seconds, 2)  # libpq treats 1 as 2
    if "prepared_statement_cache_size" in query:
        _number(name, "prepared_statement_cache_size", query["prepared_statement_cache_size"], int)
    for key in _FILES:
        path = query.get(key)
        if path is not None and path != "system" and not os.path.isfile(path):
            raise ValueError(f"{name}: {key} file {path} does not exist or is not a file")
    if "sslcert" in query and parser.get("sslmode") != "disable":
        _check_client_key(name, query["sslcert"], query.get("sslkey"), query.get("sslpassword"))
    return arguments


def _server_settings(name: str, query: dict[str, str]) -> dict[str, str]:
    """libpq's `options` ('-c name=value' ...) and application_name, as server settings."""
    settings = {}
    try:
        words = iter(shlex.split(query.get("options", "")))
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise ValueError(f"{name}: options cannot be read: {exc} (unbalanced quotes?)") from None
    for word in words:
        match = _SETTING.fullmatch(f"-c{next(words, '')}" if word == "-c" else word)
        if match is None:
            raise ValueError(f"{name}: options may only hold '-c name=value' settings")
        settings[match[1]] = match[2]
    application_name = query.get("application_name") or query.get("fallback_application_name")
    if application_name:
        settings["application_name"] = application_name
    return settings


def _check_channel_binding(name: str, value: str | None, sslmode: str | None) -> None:
    _check_choice(name, "channel_binding", value, ("disable", "prefer", "require"))
    # asyncpg has no channel binding. A server already authenticated by its
    # certificate and host name (verify-full) is what binding would prove.
    if value == "require" and sslmode != "verify-full":
        raise ValueError(
            f"{name}: channel_binding=require cannot be honoured (asyncpg has no channel "
            "binding); authenticate the server by its certificate instead, with "
            "sslmode=verify-full (sslrootcert=system for a public CA), or remove channel_binding"
        )


def _check_choice(name: str, key: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise ValueError(f"{name}: {key}={value} is not one of {', '.join(choices)}")


def _number(name: str, key: str, value: str, kind: type[int] | type[float]) -> int | float:
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{name}: {key}={value} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}: {key}={value} must be a finite number")
    if not 0 <= number <= MAX_SECONDS:
        raise ValueError(f"{name}: {key}={value} must be between 0 and {MAX_SECONDS:g}")
    return number


def _check_client_key(name: str, cert: str, key: str | None, password: str | None) -> None:
    """Load the client certificate and key as asyncpg will at connect time, so that a
    key its password does not open fails now, in words ("[SSL] PEM lib" otherwise)."""
    import ssl  # only URLs with a client certificate need it here

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        # A callable, as asyncpg passes it: never a prompt on the terminal.
        context.load_cert_chain(cert, keyfile=key, password=lambda: password or "")
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ValueError(
                f"{name}: sslkey {key or cert} is not the key of sslcert {cert}"
            ) from None
        raise ValueError(
            f"{name}: sslkey {key or cert} could not be decrypted: check sslpassword "
            "(and that sslcert and sslkey are PEM files)"
        ) from None
    except OSError as exc:  # unreadable: permissions
        raise ValueError(f"{name}: sslcert or sslkey cannot be read: {exc.strerror}") from None


def last(value: str | tuple[str, ...]) -> str:
    """The last of a repeated parameter, as libpq takes it."""
    return value[-1] if isinstance(value, tuple) else value


def _system_trust() -> Any:
    import ssl  # only URLs with sslrootcert=system need it here

    return ssl.create_default_context()
