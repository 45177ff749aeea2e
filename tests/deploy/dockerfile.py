"""Read the deploy/docker Dockerfiles without Docker: continuation lines joined, stages split."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = sorted(p for p in DOCKER.glob("Dockerfile.*") if p.suffix != ".dockerignore")
ENTRYPOINT = DOCKER / "entrypoint.sh"


@dataclass
class Stage:
    """One FROM stage: its base image and its instructions."""

    base: str
    lines: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, rest)


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of a Dockerfile."""
    text = re.sub(r"\\\n", " ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            base = rest.split()[0]
            stages.append(Stage(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)))
        elif stages:
            stages[-1].lines.append((instr, rest.strip()))
        elif instr == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args, stages
