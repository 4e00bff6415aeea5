"""Copier fix-up for v0.4.0: the template's code moved into infra/ folders.

Run after an update crosses v0.4.0, in the service's directory:
python v0_4_0_layout.py PACKAGE_NAME. Pure and offline: it writes only the files
named below, and prints one line for each thing it did or could not do.

1. Old import paths keep working for one release. `copier update` removed the
   template's old modules (db/session.py, db/settings.py, ...); where code of the
   service's own may still import them (core/config.py imports DatabaseSettings
   from db/settings.py, main.py the web layer, tests/conftest.py the fixtures),
   this writes a small alias module at the old path that imports from the new
   home and warns (DeprecationWarning). The service's own files stay as they are;
   the warning says what to change, then the alias can be deleted (v0.5.0 will).
2. db/base.py becomes the service's own file (updates skip it). Its last lines
   imported the model registry, an import circle with the first model; what needs
   every model now imports the registry itself (alembic/env.py for autogenerate,
   the test fixtures). Those lines are removed when they are as the template wrote them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REMOVED_IN = "v0.5.0"
_HEADER = '''"""Deprecated since v0.4.0, removed in {removed}: {what}.

Written by the v0.4.0 update so that old imports keep working; change them as the
warning says, then delete this file.
"""

import warnings

'''
_WARN = """
warnings.warn(
    "{old} moved to {new}: {change}, then delete {path}",
    DeprecationWarning,
    stacklevel=2,
)
"""
# old path -> (what moved, new home, {old name: new name}, what to change); {p} is the package.
ALIASES: dict[str, tuple[str, str, dict[str, str], str]] = {
    "{p}/db/session.py": (
        "the engines moved to {p}/infra/engines.py",
        "{p}.infra.engines",
        {
            "create_engine": "create_app_engine",
            "create_read_engine": "create_read_engine",
            "create_sessionmaker": "create_sessionmaker",
            "engine_for": "engine_for",
        },
        "import from there (create_engine is create_app_engine)",
    ),
    "{p}/db/settings.py": (
        "the settings moved to {p}/infra/settings.py",
        "{p}.infra.settings",
        {name: name for name in ("DatabaseSettings", "MigrationSettings", "settings_error_line")},
        "import DatabaseSettings from there in {p}/core/config.py",
    ),
    "{p}/db/reads.py": (
        "read sessions moved to {p}/infra/read_sessions.py",
        "{p}.infra.read_sessions",
        {name: name for name in ("ReadSessions", "ReplicaState", "ReplicaUnavailable")},
        "import from there",
    ),
    "{p}/web/database.py": (
        "the web layer moved to {p}/infra/web/database.py",
        "{p}.infra.web.database",
        {
            **{
                name: name
                for name in (
                    "EngineDep",
                    "ReadSessionDep",
                    "SessionDep",
                    "get_engine",
                    "get_read_session",
                    "get_session",
                    "lifespan",
                )
            },
            "ReadsDep": "ReadSessionsDep",
            "get_reads": "get_read_sessions",
        },
        "import from there (ReadsDep is ReadSessionsDep)",
    ),
    "{p}/web/health.py": (
        "/health moved to {p}/infra/web/health.py",
        "{p}.infra.web.health",
        {"router": "router"},
        "import from there in {p}/main.py",
    ),
}
FIXTURES_ALIAS = (
    "the database fixtures moved to tests/infra/db_fixtures.py",
    "from .infra.db_fixtures import *  # noqa: F403\nfrom .infra.db_fixtures import __all__  # noqa: F401\n",
    "tests.infra.db_fixtures",
    "write `from .infra.db_fixtures import *  # noqa: F403` in tests/conftest.py",
)
MIGRATE_ALIAS = '''"""Deprecated since v0.4.0, removed in {removed}: the migrate step is
`python -m {p}.infra.migrate`.

Written by the v0.4.0 update so that deploy files calling `python -m {p}.db.migrate`
keep working; change them (the template's own already are), then delete this file.
"""

import sys
import warnings

from {p}.infra.migrate import main

if __name__ == "__main__":
    warnings.warn(
        "`python -m {p}.db.migrate` is now `python -m {p}.infra.migrate`",
        DeprecationWarning,
        stacklevel=1,
    )
    sys.exit(main())
'''
REGISTRY_IMPORT = """

# Imported last: models import Base from this module, and importing the registry
# here is what puts every model into Base.metadata for Alembic's autogenerate.
from {p} import models  # noqa: E402, F401
"""
OLD_OWNER = "Template-owned. Add models under"
NEW_OWNER = "Yours since v0.4.0 (`copier update` skips it). Add models under"


def write_aliases(project: Path, package: str) -> list[str]:
    """Alias modules at the old paths the service's own files still import (and the
    migrate step's, which deploy files outside the repository may call)."""
    sources = {
        path.format(p=package): _alias_source(
            path.format(p=package), what.format(p=package), _imports_of(new.format(p=package), names),
            new.format(p=package), change.format(p=package),
        )
        for path, (what, new, names, change) in ALIASES.items()
    }  # fmt: skip
    what, imports, new, change = FIXTURES_ALIAS
    sources["tests/db_fixtures.py"] = _alias_source(
        "tests/db_fixtures.py", what, imports, new, change
    )
    sources[f"{package}/db/migrate.py"] = MIGRATE_ALIAS.format(p=package, removed=REMOVED_IN)
    own_code = _own_python_sources(project)
    done = []
    for relative, source in sources.items():
        path = project / relative
        module = relative.removesuffix(".py").replace("/", ".")
        used = relative.endswith("migrate.py") or _imports(own_code, module)
        if path.exists() or not used:
            continue
        if path.parent.name == "web" and not (project / package / "infra" / "web").is_dir():
            continue
        path.parent.mkdir(exist_ok=True)
        init = path.parent / "__init__.py"
        if not init.exists():
            init.write_text('"""Deprecated aliases since v0.4.0 (see the modules here)."""\n')
        path.write_text(source)
        done.append(relative)
    if not done:
        return []
    return [
        "Deprecated aliases at the old paths, for one release (each warns what to "
        f"change; then delete it): {', '.join(done)}."
    ]


def _own_python_sources(project: Path) -> str:
    """The service's own Python anywhere in the project (its package, tests, scripts...),
    outside the template's infra/ folders, virtualenvs and hidden folders."""
    texts = []
    for path in project.rglob("*.py"):
        parts = path.relative_to(project).parts
        if "infra" in parts or any(
            part.startswith(".") or part == "node_modules" for part in parts
        ):
            continue
        texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def _imports(sources: str, module: str) -> bool:
    """Whether `sources` import `module` (a.b.c), absolutely or, in tests/, relatively."""
    parent, _, name = module.rpartition(".")
    patterns = [
        rf"\b{re.escape(module)}\b",
        rf"from\s+{re.escape(parent)}\s+import\s+[^\n]*\b{name}\b",
    ]
    if parent == "tests":
        patterns.append(rf"from\s+\.{name}\s+import")
    return any(re.search(pattern, sources) for pattern in patterns)


def _imports_of(module: str, names: dict[str, str]) -> str:
    """Import lines giving each old name, exported (`__all__`), in ruff's import order."""
    same = sorted((old for old, new in names.items() if old == new), key=_ruff_order)
    statements = [(_ruff_order(new), f"from {module} import {new} as {old}\n")
                  for old, new in names.items() if old != new]  # fmt: skip
    if same:
        block = "".join(f"    {name},\n" for name in same)
        statements.append((_ruff_order(same[0]), f"from {module} import (\n{block})\n"))
    exported = "".join(f'    "{name}",\n' for name in sorted(names))
    return "".join(line for _, line in sorted(statements)) + f"\n__all__ = [\n{exported}]\n"


def _ruff_order(name: str) -> tuple[int, str]:
    # isort's order by type: CONSTANTS, then Classes, then functions and variables.
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name.lower())


def _alias_source(path: str, what: str, imports: str, new: str, change: str) -> str:
    old = path.removesuffix(".py").replace("/", ".")
    return (
        _HEADER.format(removed=REMOVED_IN, what=what)
        + imports
        + _WARN.format(old=old, new=new, change=change, path=path)
    )


def fix_base(project: Path, package: str) -> list[str]:
    """Remove the registry import from db/base.py, if it is as the template wrote it."""
    target = project / package / "db" / "base.py"
    if not target.is_file():
        return []
    text = target.read_text()
    block = REGISTRY_IMPORT.format(p=package)
    if block in text:
        text = text.replace(block, "\n").replace(OLD_OWNER, NEW_OWNER, 1)
        target.write_text(text.rstrip() + "\n")
        return [
            f"{package}/db/base.py: removed its import of {package}.models (an import "
            "circle); alembic/env.py and the test fixtures import the models themselves. "
            f"Code of yours that needs every model in Base.metadata imports {package}.models."
        ]
    if f"from {package} import models" in text:
        return [
            f"{package}/db/base.py still imports {package}.models (an import circle with "
            "your models): delete that import; alembic/env.py and the test fixtures "
            "import the models themselves since v0.4.0."
        ]
    return []


def main(argv: list[str]) -> int:
    (package,) = argv
    project = Path.cwd()
    for line in [*write_aliases(project, package), *fix_base(project, package)]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
