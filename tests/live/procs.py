"""Run ``python -m live.cli`` as a real subprocess (the crash, restart and fault tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.live.helpers import KEY, SECRET

ROOT = Path(__file__).resolve().parents[2]


def cli_env(url: str | None = None, crash: str | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: no inherited Alpaca/pytest variables; keys for the
    fake at ``url``; ``ALPACA_IMPROVED_CRASH_AT=crash`` when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA", "PYTEST"))}
    env["PYTHONPATH"] = str(ROOT)
    if url is not None:
        env.update(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET, ALPACA_TRADING_URL=url)
    if crash:
        env["ALPACA_IMPROVED_CRASH_AT"] = crash
    return env


def live_cmd(*args: str) -> list[str]:
    """``python -m live.cli ARGS``."""
    return [sys.executable, "-m", "live.cli", *args]


def live_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m live.cli ARGS`` to completion (output captured as text)."""
    return subprocess.run(
        live_cmd(*args), cwd=ROOT, env=env or cli_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def start_live(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m live.cli ARGS`` in the background, stdout and stderr into ``log`` (a
    file, so a chatty runner never blocks on a full pipe)."""
    with open(log, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            live_cmd(*args), cwd=ROOT, env=env or cli_env(), stdout=out, stderr=subprocess.STDOUT
        )
