"""Pre-deploy and post-deploy revisions: which the migrate step runs when. Template-owned.

A rolling deploy runs the new release's revisions while the previous release still
serves. A revision says in its own file which kind it is:

- pre-deploy (expand; a file without the line is one): safe while the previous
  release serves, run before the new release starts;
- `deploy_phase = "post-deploy"` (contract): drops, renames, NOT NULL, new
  constraints; run once every pod of the previous release is gone.

One linear history: `alembic upgrade head` still applies everything, in order. The
migrate step's `pre-deploy` applies the pending revisions up to the first
post-deploy one; its `post-deploy` applies the rest. A pre-deploy revision that
comes after a post-deploy one still pending is refused: the release now serving has
not finished its own deploy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError, to_tuple

PRE_DEPLOY = "pre-deploy"
POST_DEPLOY = "post-deploy"
PHASES = (PRE_DEPLOY, POST_DEPLOY)
MARKER = "deploy_phase"  # the name a revision file assigns its phase to
# What a revision names to have finished before the post-deploy step applies it.
BACKFILLS = "backfills"

logger = logging.getLogger("alembic.env")  # under alembic.ini's `alembic` logger


def phase_of(revision: Script) -> str:
    """The revision's phase: its `deploy_phase`, pre-deploy when it has none."""
    phase = getattr(revision.module, MARKER, PRE_DEPLOY)
    if phase not in PHASES:
        raise CommandError(
            f"{shown(revision)}: {MARKER} = {phase!r}: it must be {PRE_DEPLOY!r} or {POST_DEPLOY!r}"
        )
    return str(phase)


def shown(revision: Script) -> str:
    path = Path(revision.path)
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else path.name


def upgrade(config: Any, phase: str | None) -> None:
    """`alembic upgrade head`; with PRE_DEPLOY, only the part of it that is safe while
    the previous release serves. Through env.py, like the `alembic` command: its lock
    is held while the pending revisions are read."""
    script = ScriptDirectory.from_config(config)

    def steps(heads: Any, context: Any) -> Any:
        pending = script._upgrade_revs("heads", heads)  # what `upgrade heads` runs
        if phase != PRE_DEPLOY:
            return pending
        runs = pre_deploy_part([step.revision for step in pending])
        return [step for step in pending if step.revision in runs]

    with EnvironmentContext(config, script, fn=steps, destination_rev="heads"):
        script.run_env()


def pre_deploy_part(pending: Iterable[Script]) -> list[Script]:
    """The pending revisions the pre-deploy step runs: each pre-deploy one whose
    pending ancestors are all pre-deploy. `pending` is in the order of application."""
    waiting: dict[str, Script] = {}  # pending post-deploy revisions, and what follows them
    runs: list[Script] = []
    for revision in pending:
        behind = [
            waiting[down]
            for down in to_tuple(revision.down_revision, default=())
            if down in waiting
        ]
        if phase_of(revision) == POST_DEPLOY:
            waiting[revision.revision] = behind[0] if behind else revision
        elif behind:
            raise CommandError(
                f"pre-deploy revision {shown(revision)} comes after post-deploy revision "
                f"{shown(behind[0])}, which has not run: the release now serving has not "
                "finished its deploy. Run its post-deploy step (`python -m "
                f"{__name__.split('.')[0]}.infra.migrate post-deploy`, with its image), "
                "then deploy this release again"
            )
        else:
            runs.append(revision)
    left = list(waiting)
    if left:
        logger.info("post-deploy revisions left for the post-deploy step: %s", ", ".join(left))
    return runs


def backfills_named(config: Any) -> list[str]:
    """The backfills revisions name (`backfills = ["..."]`), oldest revision first."""
    names: list[str] = []
    for revision in reversed(list(ScriptDirectory.from_config(config).walk_revisions())):
        names += [name for name in getattr(revision.module, BACKFILLS, ()) if name not in names]
    return names
