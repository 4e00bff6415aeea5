"""A URL's text: read as libpq reads it, shown without its secrets. Template-owned.

database_url.py calls these, once per URL, when settings are read.

SQLAlchemy's `make_url` ends the password at the first `@` (libpq and Python's
urllib split user-info elsewhere) and cannot read a raw `,` there once a host
list is involved. So the user-info is split here first, by libpq's rule (it ends
at the first `@` before any `/`, the user name at its first `:`), and handed on
percent-encoded; text that could be split more than one way is refused without
showing any part of it. Every message names the setting, never the password.

Host names are not checked here: one that cannot be resolved (or encoded, IDNA)
fails when connecting, like a name DNS does not know (errors.py says so in one
line), so a bad DATABASE_READ_URL only takes the standby out of reads.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from sqlalchemy.engine import URL

# libpq's parameters that carry a secret, and any name that looks like one: their
# values are shown as *** wherever a URL is shown (reprs, settings dumps, logs).
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
_SECRET_LOOKING = re.compile(r"pass|secret|token|credential", re.IGNORECASE)
MASK = "***"

_SCHEME = re.compile(r"[A-Za-z][\w+.-]*://")
# A line break pasted into a setting, a NUL: never part of a usable URL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_AMBIGUOUS = (
    "{name}: cannot tell where its user name and password end (a raw '@' or '/' in "
    "them); percent-encode both: '@' as %40, '/' as %2F "
    "(Python: urllib.parse.quote(password, safe=''))"
)


def is_secret(parameter: str) -> bool:
    return parameter in SECRET_PARAMETERS or bool(_SECRET_LOOKING.search(parameter))


def libpq_user_info(text: str, name: str) -> str:
    """`text` with its user name and password percent-encoded as libpq splits them:
    `u:pa,ss:x@h` is user `u`, password `pa,ss:x`. ValueError when ambiguous."""
    scheme = _SCHEME.match(text)
    if scheme is None:
        return text  # not a URL: make_url says so
    rest = text[scheme.end() :]
    slash = rest.find("/")
    authority = rest if slash < 0 else rest[:slash]
    at = authority.find("@")
    if at < 0:
        # No user-info by libpq's rule. An `@` further on, before the query, means
        # a raw `/` in the password cut it short: `u:pa/ss@host/db`.
        if slash >= 0 and "@" in rest[slash:].partition("?")[0]:
            raise ValueError(_AMBIGUOUS.format(name=name))
        return text
    user_info, host_and_rest = rest[:at], rest[at + 1 :]
    if "@" in host_and_rest.partition("/")[0].partition("?")[0]:
        raise ValueError(_AMBIGUOUS.format(name=name))  # `u:pa@ss@host`
    user, colon, password = user_info.partition(":")
    encoded = _encoded(user) + (f":{_encoded(password)}" if colon else "")
    return f"{scheme.group()}{encoded}@{host_and_rest}"


def refuse_control_characters(url: URL, name: str) -> None:
    """None in what messages show (user, host, database, parameters): raw or
    percent-encoded, a line break would split a message in two."""
    shown = [url.username, url.host, url.database]
    shown += [value for key, value in _query_pairs(url) if not is_secret(key)]
    if any(_CONTROL.search(part) for part in shown if part):
        raise ValueError(
            f"{name} holds a line break or another control character; remove it "
            "(percent-encoded ones too)"
        )


def masked_url(url: URL) -> str:
    """The URL for people: the password and every secret parameter's value as ***."""
    shown = url.set(query={}).render_as_string(hide_password=True)
    pairs = _query_pairs(url)
    if not pairs:
        return shown
    return f"{shown}?" + "&".join(
        f"{key}={MASK if is_secret(key) else quote(value, safe='/:,=-')}" for key, value in pairs
    )


def _query_pairs(url: URL) -> list[tuple[str, str]]:
    """Each (parameter, value) of the query, a repeated parameter once per value."""
    return [
        (key, value)
        for key, values in url.query.items()
        for value in ([values] if isinstance(values, str) else values)
    ]


def _encoded(part: str) -> str:
    return quote(unquote(part), safe="")
