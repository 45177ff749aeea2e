"""The Dockerfiles, linted offline (no Docker here), and the secrets entrypoint, run for real.

A small parser joins continuation lines and splits stages; the checks: the final stage runs as a
non-root uid, no ENV/ARG carries a secret, a HEALTHCHECK exists, base images and tools are pinned
(no `latest`), Python packages come from uv.lock (frozen sync or the lock as constraints), every
COPY source exists, and the image versions named in compose and the chart match the lock.
The entrypoint (POSIX sh, as in the images) is executed with temp secret files.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.dockerfile import DOCKERFILES, ENTRYPOINT, REPO, parse

SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL", re.IGNORECASE)


def locked(name: str) -> str:
    """The version uv.lock pins for a package."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (version,) = {p["version"] for p in lock["package"] if p["name"] == name}
    return str(version)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_pinned_non_root_healthchecked_and_secret_free(path: Path) -> None:
    args, stages = parse(path)
    assert stages, path
    for stage in stages:
        image, _, tag = stage.base.partition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), stage.base
    final = stages[-1]
    instrs = [i for i, _ in final.lines]
    user = [rest for i, rest in final.lines if i == "USER"]
    assert user, "the final stage sets USER"
    uid = user[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, user[-1]
    assert instrs.index("USER") < instrs.index("ENTRYPOINT")
    assert "HEALTHCHECK" in instrs
    entry = json.loads(dict(final.lines)["ENTRYPOINT"])
    assert entry == ["/usr/local/bin/entrypoint.sh"]
    cmd = json.loads(dict(final.lines)["CMD"])
    assert cmd, "a default command"
    every = [(i, r) for s in stages for i, r in s.lines]
    every += [("ARG", f"{k}={v}") for k, v in args.items()]
    for instr, rest in every:
        if instr in ("ENV", "ARG"):
            for name in re.findall(r"(\w+)=", rest):
                assert not SECRET_NAME.search(name) or name.endswith("_VERSION"), rest
        if instr == "RUN":
            for pip in re.findall(r"pip install[^&]*", rest):
                assert "uv==${UV_VERSION}" in pip or "-c constraints.txt" in pip, pip
            if "uv sync" in rest:
                assert "--frozen" in rest, rest
        if instr == "COPY" and "--from" not in rest:
            for src in shlex.split(rest)[:-1]:
                assert (REPO / src).exists(), f"COPY {src}: not in the repo"
    uv_pins = [r for s in stages for i, r in s.lines if i == "ARG" and r.startswith("UV_VERSION=")]
    makefile_uv = re.search(r"UV_VERSION := (\S+)", (REPO / "Makefile").read_text())
    assert makefile_uv and uv_pins == [f"UV_VERSION={makefile_uv.group(1)}"]


def test_all_three_images_are_checked() -> None:
    assert [p.name for p in DOCKERFILES] == [
        "Dockerfile.dagster",
        "Dockerfile.mlflow",
        "Dockerfile.user-code",
    ]
    for p in DOCKERFILES:  # BuildKit's per-Dockerfile ignore file keeps .venv and secrets out
        assert "deploy/secrets" in (p.parent / f"{p.name}.dockerignore").read_text()


def test_explicit_pins_never_contradict_the_lock() -> None:
    """A package pinned in a Dockerfile (`name==${ARG}`) is one the lock does not pin: the lock's
    constraints and a second pin of the same package would fail the build."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    locked_names = {p["name"] for p in lock["package"]}
    for path in DOCKERFILES:
        text = path.read_text()
        for name in re.findall(r'"?([A-Za-z0-9_.-]+)(?:\[[a-z,]+\])?==\$\{\w+\}', text):
            if name != "uv":
                assert name.lower() not in locked_names, f"{path.name}: {name} is in uv.lock"


def test_image_tags_match_the_locked_versions() -> None:
    """compose and the chart tag the images with what the lock installs into them."""
    compose = (REPO / "deploy" / "compose.yaml").read_text()
    values = yaml.safe_load((REPO / "deploy/helm/alpaca-improved/values.yaml").read_text())
    dagster, mlflow = locked("dagster"), locked("mlflow")
    assert f"alpaca-improved/dagster:{dagster}" in compose
    assert f"alpaca-improved/mlflow:{mlflow}" in compose
    assert values["images"]["dagster"]["tag"] == dagster
    assert values["images"]["mlflow"]["tag"] == mlflow
    # the bundled S3 server is the moto the tests run
    assert values["images"]["s3"]["tag"] == locked("moto")
    assert f"motoserver/moto:{locked('moto')}" in compose
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert values["images"]["userCode"]["tag"] == project
    assert f"alpaca-improved/user-code:{project}" in compose


def run_entrypoint(env: dict[str, str], *cmd: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"]}
    return subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), *cmd],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def test_entrypoint_exports_secrets_from_files(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("PKTEST123\n")
    pw = tmp_path / "pw"
    pw.write_text("s3cr3t with spaces")
    proc = run_entrypoint(
        {"ALPACA_API_KEY_FILE": str(key), "DAGSTER_PG_PASSWORD_FILE": str(pw)},
        "sh",
        "-c",
        'printf "%s|%s|%s" "$ALPACA_API_KEY" "$DAGSTER_PG_PASSWORD" "$ALPACA_API_KEY_FILE"',
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"PKTEST123|s3cr3t with spaces|{key}"


@pytest.mark.parametrize(
    ("make_env", "message"),
    [
        (lambda d: {"ALPACA_API_KEY_FILE": str(d / "missing")}, "ALPACA_API_KEY_FILE="),
        (lambda d: {"DAGSTER_PG_PASSWORD_FILE": str(d / "empty")}, "is empty"),
        (
            lambda d: {"ALPACA_API_KEY_FILE": str(d / "key"), "ALPACA_API_KEY": "PKinline"},
            "both ALPACA_API_KEY and ALPACA_API_KEY_FILE are set",
        ),
    ],
)
def test_entrypoint_refuses_bad_secret_files_with_one_line(
    tmp_path: Path, make_env: object, message: str
) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "key").write_text("PKsecretvalue")
    env = make_env(tmp_path)  # type: ignore[operator]
    proc = run_entrypoint(env, "echo", "started")
    assert proc.returncode == 2
    assert "started" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "PKsecretvalue" not in proc.stderr and "PKinline" not in proc.stderr


def test_entrypoint_needs_a_command() -> None:
    proc = run_entrypoint({})
    assert proc.returncode == 2 and "no command given" in proc.stderr
