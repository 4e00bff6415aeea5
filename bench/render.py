"""Rendering a service against copier's floor (one question, one file, no extensions)."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path

from .common import PYTHON, Context, Row, alternate, run


def minimal_template(workdir: Path) -> Path:
    repo = workdir / "minimal-template"
    repo.mkdir()
    (repo / "copier.yml").write_text("name:\n  type: str\n  default: x\n")
    (repo / "README.md.jinja").write_text("# {{ name }}\n")
    return repo


def rows(ctx: Context) -> list[Row]:
    counter = itertools.count()

    def copy(source: Path, *extra: str) -> Callable[[], None]:
        def action() -> None:
            dst = ctx.workdir / f"render-{next(counter)}"
            run(PYTHON, "-m", "copier", "copy", "--quiet", "--defaults", *extra, source, dst)
            shutil.rmtree(dst)

        return action

    medians = alternate(
        ctx,
        ours=copy(ctx.template, "--trust", "--vcs-ref", "HEAD"),
        minimal=copy(minimal_template(ctx.workdir)),
    )
    ratio = medians["ours"] / medians["minimal"]
    return [
        (
            "render",
            "copier copy --defaults",
            f"{medians['ours']:.2f} s",
            f"minimal template {medians['minimal']:.2f} s ({ratio:.2f}x)",
        )
    ]
