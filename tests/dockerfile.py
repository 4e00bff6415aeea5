"""Reading a rendered Dockerfile: its instructions, and the commands it runs.

The tests run the image's own CMD and HEALTHCHECK commands here, where no Docker
engine exists, so the image and the tests cannot drift apart.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_INSTRUCTION = re.compile(r"([A-Z]+)\s+(.*)", re.DOTALL)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result = []
    for text in logical:
        match = _INSTRUCTION.fullmatch(text.strip())
        assert match, f"not an instruction: {text!r}"
        result.append((match[1], " ".join(match[2].split())))
    return result


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form CMD (or of HEALTHCHECK ... CMD [...])."""
    command = json.loads(arguments[arguments.index("[") :])
    assert isinstance(command, list) and all(isinstance(part, str) for part in command)
    return command


def last(path: Path, instruction: str) -> str:
    """Arguments of the last such instruction: the one in force in the final stage."""
    found = [arguments for name, arguments in instructions(path) if name == instruction]
    assert found, f"{path.name} has no {instruction}"
    return found[-1]
