"""The deployment's exact commands and probes, run here as local processes on 127.0.0.1.

Containers cannot run on this machine, but their commands can: the code location image's CMD and
HEALTHCHECK (read from the Dockerfile, only the port changed), and a live runner's container args
and liveness probe as the chart renders them (sim broker, a free port, the secrets directory moved
to a temp dir), started through the images' entrypoint with the secret files it expects.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.deploy.chart import containers, named, render
from tests.deploy.dockerfile import DOCKER, ENTRYPOINT, parse

VENV_BIN = str(Path(sys.executable).parent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: the venv first on PATH (the image's /opt/venv/bin), temp homes."""
    return {
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "ALPACA_IMPROVED_HOME": str(home / "data"),
        **(extra or {}),
    }


@contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a command in the background; terminate it (by its pid) on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(
    probe: list[str], env: dict[str, str], proc: subprocess.Popen[bytes], log: Path, budget: float
) -> float:
    """Seconds until ``probe`` exits 0 (fails if the process dies or the budget runs out)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < budget:
        assert proc.poll() is None, f"exited {proc.returncode}: {log.read_text()[-2000:]}"
        if subprocess.run(probe, env=env, capture_output=True, timeout=60).returncode == 0:
            return time.monotonic() - t0
        time.sleep(1)
    raise AssertionError(f"not healthy after {budget} s: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_code_location_cmd_answers_its_healthcheck(tmp_path: Path) -> None:
    """Dockerfile.user-code's CMD serves the real definitions; its HEALTHCHECK sees it (~45 s)."""
    _, stages = parse(DOCKER / "Dockerfile.user-code")
    lines = dict(stages[-1].lines)
    cmd = json.loads(lines["CMD"])
    check = json.loads(re.sub(r"^.*?CMD\s+", "", lines["HEALTHCHECK"]))
    port = str(free_port())
    cmd[cmd.index("-p") + 1] = port
    cmd[cmd.index("-h") + 1] = "127.0.0.1"  # 0.0.0.0 in the image; loopback here
    check[check.index("-p") + 1] = port
    (tmp_path / "dagster_home").mkdir()
    env = env_for(tmp_path)
    log = tmp_path / "code.log"
    with started(["/bin/sh", str(ENTRYPOINT), *cmd], env, log) as proc:
        wait_healthy(check, env, proc, log, budget=240)


def test_live_runner_args_and_probe_as_rendered(tmp_path: Path, helm_bin: str) -> None:
    """The chart's runner container, run locally: its secret files, args and exec probe work."""
    port = free_port()
    secrets = tmp_path / "secrets"
    account = {
        "name": "paper",
        "broker": "sim",
        "live": False,
        "cycleSeconds": 1,
        "existingSecret": "account-paper",
        "journalSize": "1Gi",
    }
    values = tmp_path / "values.json"
    values.write_text(
        json.dumps(
            {
                "secretsMountPath": str(secrets),
                "liveRunner": {"accounts": [account], "healthPort": port},
            }
        )
    )
    sts = named(render((), (str(values),)), "StatefulSet", "-live-paper")
    c = next(c for c in containers(sts) if c["name"] == "live-runner")  # + signals sidecar
    env = {e["name"]: e["value"] for e in c["env"]}
    for name, path in env.items():  # the Secret's keys, as the kubelet would mount them
        if name.endswith("_FILE"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(f"test-{name.lower()}\n")
    run_env = env_for(tmp_path, env)
    log = tmp_path / "runner.log"
    with started(["/bin/sh", str(ENTRYPOINT), *c["args"]], run_env, log) as proc:
        seconds = wait_healthy(c["livenessProbe"]["exec"]["command"], run_env, proc, log, 60)
    assert seconds < c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
    text = log.read_text()  # (the runner's JSON status has an empty "error" field: not a failure)
    assert "Traceback" not in text
    assert not [line for line in text.splitlines() if line.lower().startswith("error")]
