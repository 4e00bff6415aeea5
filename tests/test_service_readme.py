"""The service's README is short and the team's; the template's manual is docs/.

The manual says what the code does: every setting it names exists, each default it
gives is the code's, and none is left out. The README's commands exist, and every
link in the README and the manual leads to a file of the service."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from helpers import Service, render

SETTING = re.compile(r"\b(?:DATABASE|MIGRATION|SHUTDOWN|LOG|BACKFILL)_[A-Z_]+\b")
# | `NAME` | default | what |
DEFAULT_ROW = re.compile(r"^\| `([A-Z_]+)` \| ([^|]+?) \| [^|]+ \|$", re.MULTILINE)
# Settings, and the settings classes of the web layer and of observability=otel,
# which existing services' Settings (theirs) cannot inherit.
PROGRAM = """
import importlib, json
from app.core.config import Settings
fields = dict(Settings.model_fields)
for module, name in (
    ("app.infra.web.shutdown", "ShutdownSettings"),
    ("app.infra.logs", "LogSettings"),
    ("app.infra.backfill.settings", "BackfillSettings"),
):
    try:
        fields.update(getattr(importlib.import_module(module), name).model_fields)
    except ModuleNotFoundError:
        pass
print(json.dumps({k: f.default for k, f in fields.items()}, default=repr))
"""


def spelled(value: object) -> str:
    """A default as the README writes it: 10.0 -> 10, True -> true."""
    if isinstance(value, bool):
        return str(value).lower()
    return format(value, "g") if isinstance(value, float) else str(value)


@pytest.fixture(scope="module")
def web_otel_render(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(
        copier_template,
        tmp_path_factory.mktemp("web-otel") / "svc",
        web="fastapi",
        observability="otel",
    )


@pytest.mark.parametrize("which", ["default", "fastapi-otel"])
def test_deploying_section_matches_the_settings(which: str, request: pytest.FixtureRequest) -> None:
    root: Path = request.getfixturevalue(
        "default_render" if which == "default" else "web_otel_render"
    )
    service = Service(root)
    defaults = json.loads(service.ok(service.run(sys.executable, "-c", PROGRAM)))
    section = "\n".join(page.read_text() for page in sorted((root / "docs").glob("*.md")))

    named = set(SETTING.findall(section))
    assert named <= set(defaults), named - set(defaults)
    assert named == set(defaults), f"not in docs/: {set(defaults) - named}"
    rows = dict(DEFAULT_ROW.findall(section))
    assert len(rows) >= 10, rows
    for name, documented in rows.items():
        assert documented == spelled(defaults[name]), (name, documented, defaults[name])


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
MAKE_TARGET = re.compile(r"`make ([a-z-]+)")


@pytest.mark.parametrize("which", ["default", "fastapi-otel"])
def test_readme_is_short_and_the_manual_in_small_linked_pages(
    which: str, request: pytest.FixtureRequest
) -> None:
    root: Path = request.getfixturevalue(
        "default_render" if which == "default" else "web_otel_render"
    )
    readme = (root / "README.md").read_text()
    assert len(readme.splitlines()) <= 120
    pages = sorted((root / "docs").glob("*.md"))
    assert {page.stem for page in pages} >= {
        "migrations",
        "connections",
        "testing",
        "deploy",
        "operations",
        "updating",
    }
    for page in pages:
        assert len(page.read_text().splitlines()) <= 300, page.name
    # The README links every page; every link of the README and the manual resolves.
    linked = {(root / target).resolve() for target in LINK.findall(readme)}
    unlinked = {page.name for page in pages if page.resolve() not in linked}
    assert unlinked == set()
    for document in [root / "README.md", *pages]:
        for target in LINK.findall(document.read_text()):
            if "://" not in target:
                assert (document.parent / target).exists(), f"{document.name}: {target}"
    # The two set-up commands, then the daily ones: all the service's own.
    makefile = (root / "Makefile").read_text()
    setup = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert setup and setup[1].splitlines() == [
        "git init -q && python3 scripts/bootstrap.py",
        "make help",
    ]
    assert (root / "scripts/bootstrap.py").is_file() and re.search(r"^help:", makefile, re.M)
    targets = set(MAKE_TARGET.findall(readme))
    assert {"test", "lint", "migrate", "revision", "update", "audit"} <= targets
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.M), target
