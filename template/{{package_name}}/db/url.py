"""PostgreSQL URLs as providers print them (libpq's form), made ready for asyncpg.

Template-owned: `copier update` keeps this file current.

SQLAlchemy's asyncpg dialect hands every URL query key to `asyncpg.connect()`,
which knows none of libpq's names (`sslmode=require` ends in a TypeError).
`parse_database_url` checks a URL once, when settings are read, and
`connect_arguments` turns it into asyncpg's arguments, for the app's engine,
alembic/env.py and the test fixtures alike. Each libpq parameter is handled in
one of the ways the tables below say; an unknown one is refused. Messages never
contain the URL, so a password cannot leak through them.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ASYNC_DRIVER = "postgresql+asyncpg"
# PaaS providers hand out postgres:// URLs; both spellings mean "PostgreSQL, default driver".
_CONVERTIBLE_SCHEMES = frozenset({"postgres", "postgresql", ASYNC_DRIVER})
_EXAMPLE = "postgresql+asyncpg://user:password@localhost:5432/dbname"
# A name, not `except (A, B):`, which ruff formats without parentheses for py314 targets.
_NOT_A_URL = (ArgumentError, ValueError)

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
_KEPT = frozenset({"host", "target_session_attrs", "prepared_statement_cache_size"})
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
_ASYNCPG_NAMES = {"ssl": str, "statement_cache_size": int, "command_timeout": float}
# Files read at connect time: checked when the settings are read, to fail early and clearly.
_FILES = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
# libpq allows these as parameters too; they move into the URL's own fields.
_URL_FIELDS = {"dbname": "database", "user": "username", "password": "password"}
_KNOWN = _TO_ASYNCPG_PARSER | _TRANSLATED | _KEPT | _CHECKED | _DROPPED | set(_ASYNCPG_NAMES)

_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
_SETTING = re.compile(r"(?:-c|--)([A-Za-z_][\w.]*)=(.*)", re.DOTALL)
# libpq's multi-host form (`h1:5432,h2:5433`), which SQLAlchemy's URL parser cannot read.
_HOST_LIST = re.compile(r"(?P<head>[\w+]+://(?:[^@/]*@)?)(?P<hosts>[^/?@]*,[^/?]*)(?P<rest>.*)")


def parse_database_url(value: object, name: str = "DATABASE_URL") -> URL:
    """Return `value` as an asyncpg URL, or raise ValueError naming the problem."""
    if isinstance(value, URL):
        url = value
    elif isinstance(value, str) and value.strip():
        text = _host_list_as_query(value.strip(), name)
        try:
            url = make_url(text)
        except _NOT_A_URL:
            raise ValueError(f"{name} is not a URL; expected {_EXAMPLE}") from None
    else:
        raise ValueError(f"{name} is empty; expected {_EXAMPLE}")
    if url.drivername not in _CONVERTIBLE_SCHEMES:
        raise ValueError(
            f"{name} uses unsupported scheme '{url.drivername}'; this service "
            f"needs PostgreSQL through asyncpg ({ASYNC_DRIVER}://; postgres:// and "
            "postgresql:// are converted)"
        )
    moved: dict[str, Any] = {
        field: _last(url.query[key]) for key, field in _URL_FIELDS.items() if key in url.query
    }
    if moved:
        url = url.set(**moved).difference_update_query(_URL_FIELDS)
    if not url.database:
        raise ValueError(f"{name} names no database; expected {_EXAMPLE}")
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"{name} has port {url.port}, outside 1-65535")
    url = url.set(drivername=ASYNC_DRIVER)
    connect_arguments(url, name)  # unknown parameters and bad values are refused now
    for key in _FILES:
        path = url.query.get(key)
        if isinstance(path, str) and path != "system" and not os.path.isfile(path):
            raise ValueError(f"{name}: {key} file {path} does not exist or is not a file")
    return url


def connect_arguments(url: URL, name: str = "DATABASE_URL") -> tuple[URL, dict[str, Any]]:
    """(URL for SQLAlchemy, keyword arguments for `asyncpg.connect`) from a parsed URL."""
    query = {key: _last(value) for key, value in url.query.items()}
    unknown = sorted(set(query) - _KNOWN)
    if unknown:
        raise ValueError(
            f"{name} has parameter '{unknown[0]}', which this service does not know; "
            "remove it (libpq's connection parameters are understood, and asyncpg's "
            "ssl, statement_cache_size and command_timeout)"
        )
    arguments: dict[str, Any] = {
        key: _number(name, key, query[key], kind)
        for key, kind in _ASYNCPG_NAMES.items()
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
    return url.set(query={k: v for k, v in url.query.items() if k in _KEPT}), arguments


def describe_endpoint(url: URL) -> str:
    """'host:port/db' (the socket directory, or every host) for messages; never the password."""
    hosts = url.query.get("host")
    if isinstance(hosts, tuple):  # already host:port each
        return f"{','.join(hosts)}/{url.database}"
    return f"{url.host or hosts or 'localhost'}:{url.port or 5432}/{url.database}"


def _host_list_as_query(text: str, name: str) -> str:
    """`scheme://u:p@h1:5432,h2/db?x` -> `scheme://u:p@/db?host=h1:5432&host=h2:5432&x`."""
    match = _HOST_LIST.fullmatch(text)
    if match is None:
        return text
    if "[" in match["hosts"]:
        raise ValueError(f"{name}: a host list cannot hold IPv6 addresses; use host names")
    hosts = []
    for entry in match["hosts"].split(","):
        host, colon, port = entry.partition(":")
        hosts.append(f"host={quote(host, safe='')}:{port or 5432}")
    path, _, query = match["rest"].partition("?")
    return f"{match['head']}{path or '/'}?" + "&".join([*hosts, *filter(None, [query])])


def _server_settings(name: str, query: dict[str, str]) -> dict[str, str]:
    """libpq's `options` ('-c name=value' ...) and application_name, as server settings."""
    settings = {}
    words = iter(shlex.split(query.get("options", "")))
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
    if number < 0:
        raise ValueError(f"{name}: {key}={value} must not be negative")
    return number


def _last(value: str | tuple[str, ...]) -> str:
    return value[-1] if isinstance(value, tuple) else value


def _system_trust() -> Any:
    import ssl  # only URLs with sslrootcert=system need it here

    return ssl.create_default_context()
