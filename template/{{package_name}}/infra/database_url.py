"""PostgreSQL URLs as providers print them (libpq's form), parsed once.

Template-owned: `copier update` keeps this file current.

SQLAlchemy's asyncpg dialect hands every URL query key to `asyncpg.connect()`,
which knows none of libpq's names (`sslmode=require` ends in a TypeError).
`parse_database_url` reads a URL once, when settings are read, into a
`DatabaseUrl`: the URL for SQLAlchemy and the keyword arguments for asyncpg
(libpq.py makes those), from which every engine is built: the app's, the read
replicas', the migrations', the test fixtures'. Messages never contain the URL,
so a password cannot leak through them; a DatabaseUrl shows itself masked
(url_text.py: no password, no secret parameter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .libpq import KEPT, asyncpg_arguments, last
from .url_text import libpq_user_info, masked_url, refuse_control_characters

ASYNC_DRIVER = "postgresql+asyncpg"
# PaaS providers hand out postgres:// URLs; both spellings mean "PostgreSQL, default driver".
_CONVERTIBLE_SCHEMES = frozenset({"postgres", "postgresql", ASYNC_DRIVER})
_EXAMPLE = "postgresql+asyncpg://user:password@localhost:5432/dbname"
# A name, not `except (A, B):`, which ruff formats without parentheses for py314 targets.
_NOT_A_URL = (ArgumentError, ValueError)

# libpq allows these as parameters too; they move into the URL's own fields.
_URL_FIELDS = {"dbname": "database", "user": "username", "password": "password"}
# libpq's multi-host form (`h1:5432,h2:5433`), which SQLAlchemy's URL parser cannot read.
_HOST_LIST = re.compile(r"(?P<head>[\w+]+://(?:[^@/]*@)?)(?P<hosts>[^/?@]*,[^/?]*)(?P<rest>.*)")


Pooler = Literal["none", "transaction"]
# An engine's execution option: its connections go through a transaction-mode
# pooler (the migration lock is then transaction-scoped).
TRANSACTION_POOLER = "transaction_pooler"


@dataclass(frozen=True, repr=False)
class DatabaseUrl:
    """A PostgreSQL URL, parsed: what SQLAlchemy and asyncpg each need to connect.

    Made by `parse_database_url`; `using` and `with_database` derive others
    from it without parsing again.
    """

    # As configured, libpq's parameters kept: for messages and for handing on.
    url: URL
    # libpq's parameters taken out: what SQLAlchemy's asyncpg dialect gets.
    sqlalchemy_url: URL
    # `asyncpg.connect()` keywords made from libpq's parameters.
    connect_args: Mapping[str, Any] = field(default_factory=dict)
    pooler: Pooler = "none"

    @property
    def endpoint(self) -> str:
        """'host:port/db' for messages; never the password."""
        return describe_endpoint(self.url)

    @property
    def execution_options(self) -> dict[str, Any]:
        """For the engine: whether its connections go through a transaction-mode pooler."""
        return {TRANSACTION_POOLER: True} if self.pooler == "transaction" else {}

    def using(self, *, pooler: Pooler, connect_timeout: float) -> DatabaseUrl:
        """As the settings say to connect: through a pooler or not, and a connect
        timeout unless the URL's own `connect_timeout` set one."""
        arguments = {"timeout": connect_timeout, **self.connect_args}
        if pooler == "transaction":
            # asyncpg names and caches prepared statements per server connection; a
            # transaction pooler hands each transaction another one ("prepared statement
            # does not exist", or another client's statement run). Unnamed ones are safe.
            arguments["statement_cache_size"] = 0
            # And SQLAlchemy's cache of them, unless the URL sets its size: an unnamed
            # statement is parsed again at each run, but the cached copy keeps its old
            # result columns, so after a migration changed them the app read a REAL as
            # its old INTEGER's bytes (7 came back as 1088421888) until the connection
            # was replaced. Costs a round trip per statement (bench/, "stale").
            if "prepared_statement_cache_size" not in self.sqlalchemy_url.query:
                arguments["prepared_statement_cache_size"] = 0
        return replace(self, connect_args=arguments, pooler=pooler)

    def with_database(self, database: str) -> DatabaseUrl:
        return replace(
            self,
            url=self.url.set(database=database),
            sqlalchemy_url=self.sqlalchemy_url.set(database=database),
        )

    @property
    def masked(self) -> str:
        """The URL as configured, for people: password and secret parameters as ***."""
        return masked_url(self.url)

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.masked})"


def parse_database_url(value: object, name: str = "DATABASE_URL") -> DatabaseUrl:
    """Read `value` once into a DatabaseUrl, or raise ValueError naming the problem."""
    if isinstance(value, DatabaseUrl):
        return value
    if isinstance(value, URL):
        url = value
    elif isinstance(value, str) and value.strip():
        text = _host_list_as_query(libpq_user_info(value.strip(), name), name)
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
        field: last(url.query[key]) for key, field in _URL_FIELDS.items() if key in url.query
    }
    if moved:
        url = url.set(**moved).difference_update_query(_URL_FIELDS)
    if not url.database:
        raise ValueError(f"{name} names no database; expected {_EXAMPLE}")
    refuse_control_characters(url, name)
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"{name} has port {url.port}, outside 1-65535")
    url = url.set(drivername=ASYNC_DRIVER)
    arguments = asyncpg_arguments(url.query, name)
    kept = {key: value for key, value in url.query.items() if key in KEPT}
    return DatabaseUrl(url, url.set(query=kept), arguments)


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
