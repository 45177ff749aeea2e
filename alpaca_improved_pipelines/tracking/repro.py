"""What reproduces a run: code version (git sha and uncommitted diff), argv, data versions."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_sha() -> str:
    """HEAD's sha, or ``unknown`` outside a git checkout."""
    sha = _git("rev-parse", "HEAD")
    return sha.strip() if sha else "unknown"


def git_diff() -> str:
    """The uncommitted diff against HEAD (empty when the tree is clean)."""
    return _git("diff", "HEAD") or ""


def argv() -> str:
    return " ".join(sys.argv)


def combined_version(versions: dict[str, str]) -> str:
    """One hash over named content hashes (order-independent)."""
    h = hashlib.sha256()
    for key in sorted(versions):
        h.update(f"{key}={versions[key]};".encode())
    return h.hexdigest()
