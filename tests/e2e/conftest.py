"""Fixtures for the browser end-to-end test: a materialized temp data root, a live
dagster-webserver on it, and Debian's headless Chromium driven by playwright.

Nothing here downloads a browser: the test uses ``/usr/bin/chromium`` (``make browser``
installs it) and skips when it is absent, unless ``REQUIRE_BROWSER=1`` (CI) turns the skip
into a failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = REPO_ROOT / "workspace.yaml"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling home on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SYMBOLS = "SPY,AAPL"
START = "2024-01-02"
END = "2024-01-05"  # 4 NYSE sessions: 2024-01-02 .. 2024-01-05
BACKFILL_TIMEOUT_S = 180
READY_TIMEOUT_S = 90


def require_or_skip(reason: str) -> None:
    """Skip with ``reason``; fail instead when the environment demands the browser (CI)."""
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def wait_for_url(
    url: str, timeout_s: float, proc: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` dies, fail at ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(
                f"process exited with {proc.returncode} before {url} answered; log tail:\n"
                f"{tail(log) if log else ''}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    pytest.fail(
        f"{url} not ready after {timeout_s:.0f}s ({last}); log tail:\n{tail(log) if log else ''}",
        pytrace=False,
    )


def location_name(workspace: Path = WORKSPACE) -> str:
    """The code location name the webserver gives the first ``load_from`` entry."""
    entry = yaml.safe_load(workspace.read_text())["load_from"][0]["python_module"]
    return entry.get("location_name") or entry["module_name"]


@pytest.fixture(scope="module")
def location() -> str:
    """Name of the project's code location in the UI (from workspace.yaml)."""
    return location_name()


def stop(proc: subprocess.Popen, grace_s: float = 15) -> None:
    """Terminate ``proc`` and its process group (the webserver spawns a code server)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium and playwright, or a skip (a failure under REQUIRE_BROWSER=1)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require_or_skip("the playwright python module is not installed (uv sync --group dev)")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        require_or_skip(f"{CHROMIUM} is absent; install Debian's chromium (make browser)")
    return CHROMIUM


@pytest.fixture(scope="module")
def e2e_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a user with a fresh data root (synthetic source, two symbols)."""
    home = tmp_path_factory.mktemp("e2e_home")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ALPACA_IMPROVED_") and k != "DAGSTER_HOME"
    }
    env.update(
        {
            "ALPACA_IMPROVED_HOME": str(home),
            "ALPACA_IMPROVED_SOURCE": "synthetic",
            "ALPACA_IMPROVED_FSYNC": "0",
            "ALPACA_IMPROVED_SYMBOLS": SYMBOLS,
            "ALPACA_IMPROVED_START": START,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture(scope="module")
def materialized(chromium: Path, e2e_env: dict[str, str]) -> Path:
    """Run the product's backfill (market_data_job over 4 sessions) on the persistent instance.

    A subprocess, because settings and the partitions definition are read at import time.
    Returns the DAGSTER_HOME the backfill created.
    """
    home = Path(e2e_env["ALPACA_IMPROVED_HOME"])
    code = (
        f"from alpaca_improved_pipelines.commands import run_backfill; "
        f"run_backfill({START!r}, {END!r}, None, 60, 'market_data_job')"
    )
    try:
        res = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env=e2e_env,
            capture_output=True,
            text=True,
            timeout=BACKFILL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"backfill did not finish in {BACKFILL_TIMEOUT_S}s", pytrace=False)
    out = (res.stdout + res.stderr)[-4000:]
    assert res.returncode == 0, f"backfill failed ({res.returncode}):\n{out}"
    assert "materialized 4 sessions" in res.stdout, out
    dagster_home = home / "dagster_home"
    assert (dagster_home / "dagster.yaml").is_file(), f"no instance under {dagster_home}"
    return dagster_home


@pytest.fixture(scope="module")
def webserver(
    materialized: Path, e2e_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``dagster-webserver`` on the materialized instance; yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("webserver") / "webserver.log"
    exe = Path(sys.executable).with_name("dagster-webserver")
    cmd = [str(exe), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)]
    env = {**e2e_env, "DAGSTER_HOME": str(materialized)}
    with log.open("w") as fh:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(f"{base}/server_info", READY_TIMEOUT_S, proc, log)
        yield base
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser_context(chromium: Path) -> Iterator[Any]:
    """A headless Chromium context with a throwaway profile."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="e2e-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1000},
        )
        # The UI opens a "Join the Dagster community" dialog on localhost over every page of a
        # fresh instance; mark it dismissed as the Skip button does (useStateWithStorage key).
        ctx.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
        ctx.set_default_timeout(30_000)
        ctx.set_default_navigation_timeout(30_000)
        try:
            yield ctx
        finally:
            ctx.close()


@pytest.fixture
def page(browser_context: Any, webserver: str) -> Iterator[Any]:
    p = browser_context.new_page()
    try:
        yield p
    finally:
        p.close()
