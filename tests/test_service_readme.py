"""The service README's "Deploying" section says what the code does: every setting
it names exists, each default it gives is the code's, and none is left out."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from helpers import Service

SETTING = re.compile(r"\b(?:DATABASE|MIGRATION)_[A-Z_]+\b")
# | `NAME` | default | what |
DEFAULT_ROW = re.compile(r"^\| `([A-Z_]+)` \| ([^|]+?) \| [^|]+ \|$", re.MULTILINE)
PROGRAM = """
import json
from app.core.config import Settings
print(json.dumps({k: f.default for k, f in Settings.model_fields.items()}, default=repr))
"""


def spelled(value: object) -> str:
    """A default as the README writes it: 10.0 -> 10, True -> true."""
    if isinstance(value, bool):
        return str(value).lower()
    return format(value, "g") if isinstance(value, float) else str(value)


def test_deploying_section_matches_the_settings(default_render: Path) -> None:
    service = Service(default_render)
    defaults = json.loads(service.ok(service.run(sys.executable, "-c", PROGRAM)))
    readme = (default_render / "README.md").read_text()
    section = readme[readme.index("## Deploying") : readme.index("## Keeping it up to date")]

    named = set(SETTING.findall(section))
    assert named <= set(defaults), named - set(defaults)
    assert named == set(defaults), f"not in the README: {set(defaults) - named}"
    rows = dict(DEFAULT_ROW.findall(section))
    assert len(rows) >= 10, rows
    for name, documented in rows.items():
        assert documented == spelled(defaults[name]), (name, documented, defaults[name])
