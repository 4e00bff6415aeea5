"""Revision files that make no graph, as one line naming the file. Template-owned.

Two releases' branches meet in git: two heads, a `down_revision` whose file is
gone, one revision id in two files, a cycle, a file that fails to import. Alembic
ends several of these in a traceback (a KeyError for the missing id) or in a line
that names ids but no file. `graph_failure(exc)` reads the revision files again,
only after a run failed (output.py imports this module then: a run at head pays
nothing), and names the file at fault and what to do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import context
from alembic.script import ScriptDirectory
from alembic.util import CommandError, load_python_file

# What Alembic loads from a versions directory (script/base.py): not __init__.py,
# not an editor's lock file.
REVISION_FILE = re.compile(r"(?!\.#|__init__)(.*\.py)$")
# Alembic's lines for a graph it could not use: two heads (`upgrade head`; `check`
# says "not up to date"), a cycle.
MULTIPLE_HEADS = "Multiple head revisions are present"
NOT_UP_TO_DATE = "Target database is not up to date."
CYCLE = "ycle is detected in revisions"
NO_REVISION_ID = "Could not determine revision id"  # a file without `revision = ...`
MERGE = "`alembic merge heads -m merge`"


@dataclass(frozen=True)
class RevisionFile:
    path: Path
    revision: str
    down: tuple[str, ...]
    depends_on: tuple[str, ...]
    branch_labels: tuple[str, ...]


def graph_failure(exc: BaseException) -> str | None:
    """One line for `exc` when the revision files are at fault, else None."""
    if isinstance(exc, CommandError):
        message = str(exc)
        if not (
            message.startswith((MULTIPLE_HEADS, NOT_UP_TO_DATE, NO_REVISION_ID)) or CYCLE in message
        ):
            return None
    elif not _while_reading_revisions(exc.__traceback__):
        return None
    script = ScriptDirectory.from_config(context.config)
    root = _project_root()
    try:
        files = _revision_files(script, root)
    except CommandError as problem:  # a file that does not load
        return str(problem)
    line = _broken_graph(files, root)
    if line is None and isinstance(exc, CommandError):
        line = _several_heads(str(exc), files, root)
    return line


def _while_reading_revisions(traceback: TracebackType | None) -> bool:
    """Raised while Alembic read the revision files or built their graph (its
    `alembic/script` package), not while a revision ran."""
    marker = f"{os.sep}alembic{os.sep}script{os.sep}"
    while traceback is not None:
        if marker in traceback.tb_frame.f_code.co_filename:
            return True
        traceback = traceback.tb_next
    return False


def _revision_files(script: ScriptDirectory, root: Path) -> list[RevisionFile]:
    locations: Iterable[Path] = getattr(script, "_version_locations", None) or [
        Path(script.versions)
    ]
    files = []
    for directory in locations:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if not REVISION_FILE.fullmatch(path.name):
                continue
            files.append(_read(path, root))
    return files


def _read(path: Path, root: Path) -> RevisionFile:
    name = _shown(path, root)
    try:
        module = load_python_file(path.parent, path.name)
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise CommandError(
            f"{name} fails to import: {type(exc).__name__}: {first}; fix it "
            "(`alembic heads` shows the traceback)"
        ) from None
    for attribute in ("revision", "down_revision"):
        if not hasattr(module, attribute):
            raise CommandError(
                f"{name} has no `{attribute} = ...`: every revision file names its "
                "own id and the revision it follows (None for the first)"
            )
    return RevisionFile(
        path=path,
        revision=str(module.revision),
        down=_ids(module.down_revision),
        depends_on=_ids(getattr(module, "depends_on", None)),
        branch_labels=_ids(getattr(module, "branch_labels", None)),
    )


def _ids(value: Any) -> tuple[str, ...]:
    if value is None or value == ():
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value)


def _broken_graph(files: list[RevisionFile], root: Path) -> str | None:
    by_id: dict[str, RevisionFile] = {}
    for file in files:
        other = by_id.setdefault(file.revision, file)
        if other is not file:
            return (
                f"{_shown(other.path, root)} and {_shown(file.path, root)} both have "
                f"revision = {file.revision!r}: give one of them a new id (and the "
                "revisions that follow it their new down_revision)"
            )
    labels = {label for file in files for label in file.branch_labels}
    for file in files:
        for kind, ids in (("down_revision", file.down), ("depends_on", file.depends_on)):
            for missing in ids:
                if missing in by_id or (kind == "depends_on" and missing in labels):
                    continue
                others = _heads([f for f in files if f is not file])
                return (
                    f"{_shown(file.path, root)} (revision {file.revision}) has {kind} "
                    f"{missing!r}, but no revision file has that id: restore that file "
                    f"from git, or point {kind} at the revision it follows now"
                    + (f" (the heads without it: {', '.join(others)})" if others else "")
                )
    cycle = _cycle(by_id)
    if cycle:
        chain = " -> ".join(f"{_shown(f.path, root)} ({f.revision})" for f in cycle)
        return (
            f"the revision files' down_revision make a cycle: {chain} -> "
            f"{cycle[0].revision}: point one of them at a revision outside the cycle "
            "(None for the first)"
        )
    return None


def _heads(files: list[RevisionFile]) -> list[str]:
    named = {down for file in files for down in file.down}
    return sorted(file.revision for file in files if file.revision not in named)


def _cycle(by_id: dict[str, RevisionFile]) -> list[RevisionFile]:
    """One cycle of down_revision links (newest first), or [] when there is none.
    A walk with a stack of its own: a long history would pass Python's recursion limit."""
    finished: set[str] = set()
    for start in by_id:
        if start in finished:
            continue
        path = [start]
        parents = [iter(by_id[start].down)]
        while parents:
            down = next(parents[-1], None)
            if down is None:
                finished.add(path.pop())
                parents.pop()
            elif down in path:
                return [by_id[revision] for revision in path[path.index(down) :]]
            elif down in by_id and down not in finished:
                path.append(down)
                parents.append(iter(by_id[down].down))
    return []


def _several_heads(message: str, files: list[RevisionFile], root: Path) -> str | None:
    heads = _heads(files)
    if len(heads) < 2:
        return None
    by_id = {file.revision: file for file in files}
    named = ", ".join(f"{head} ({_shown(by_id[head].path, root)})" for head in heads)
    if message.startswith(NOT_UP_TO_DATE):  # `alembic check` says only this
        message = f"{len(heads)} head revisions are present"
    return (
        f"{message.rstrip('.')}: {named}; branches that each added revisions met: "
        f"join them with {MERGE}, then `alembic upgrade head`"
    )


def _project_root() -> Path:
    """Where alembic.ini is (paths are shown from there), else the working directory."""
    ini = context.config.config_file_name
    return Path(ini).resolve().parent if ini else Path.cwd()


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)
