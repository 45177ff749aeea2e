"""Both deployment instances (the chart's ConfigMap, compose's dagster.yaml) against real Postgres.

The chart's migrate Job and the compose stack's environment, run as local processes through the
images' entrypoint: the password travels as a file (NAME_FILE), `dagster instance migrate` builds
Dagster's schema in the test server's database, and a wrong password fails without printing it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart import containers, named, render
from tests.deploy.dockerfile import ENTRYPOINT
from tests.postgres_server import PostgresServer

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def run_through_entrypoint(
    args: list[str], env: dict[str, str], home: Path, instance: str
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` as an image would, with ``instance`` as $DAGSTER_HOME/dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance)
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), *args],
        env={"PATH": path, "HOME": str(home.parent), **env, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def dagster_tables(server: PostgresServer, db: str) -> set[str]:
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def fresh_db(server: PostgresServer, name: str) -> str:
    server.create_database(name)
    return name


def test_chart_migrate_job_builds_the_schema_in_postgres(
    postgres_server: PostgresServer, tmp_path: Path, helm_bin: str
) -> None:
    db = fresh_db(postgres_server, f"chart_{os.getpid()}")
    secrets = tmp_path / "secrets"
    values: dict[str, Any] = {
        "secretsMountPath": str(secrets),
        "postgresql": {
            "bundled": False,
            "host": postgres_server.host,
            "port": postgres_server.port,
            "username": postgres_server.user,
            "dagsterDatabase": db,
        },
    }
    vfile = tmp_path / "values.json"
    vfile.write_text(json.dumps(values))
    objs = render((), (str(vfile),))
    instance = named(objs, "ConfigMap", "-instance")["data"]["dagster.yaml"]
    # no cluster here: the launcher's in-cluster credentials become a kubeconfig file (loading one
    # contacts nothing); everything else is the rendered instance
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    local = f"load_incluster_config: false\n    kubeconfig_file: {kubeconfig}"
    swapped = instance.replace("load_incluster_config: true", local)
    assert swapped != instance
    (c,) = containers(named(objs, "Job", "-migrate"))
    env = {e["name"]: e["value"] for e in c["env"]}
    pw = Path(env["DAGSTER_PG_PASSWORD_FILE"])
    pw.parent.mkdir(parents=True)
    pw.write_text(postgres_server.password + "\n")  # as a Secret volume would hold it
    proc = run_through_entrypoint(c["args"], env, tmp_path / "home", swapped)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"runs", "event_logs", "jobs", "secondary_indexes"} <= dagster_tables(
        postgres_server, db
    )
    assert postgres_server.password not in proc.stdout + proc.stderr


def compose_env(server: PostgresServer, db: str, pw_file: Path) -> dict[str, str]:
    """The daemon's environment from compose.yaml, pointed at the test server."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    env = {k: str(v) for k, v in compose["services"]["dagster-daemon"]["environment"].items()}
    assert env["DAGSTER_PG_PASSWORD_FILE"].startswith("/run/secrets/")
    env.update(
        DAGSTER_PG_HOST=server.host,
        DAGSTER_PG_PORT=str(server.port),
        DAGSTER_PG_USER=server.user,
        DAGSTER_PG_DB=db,
        DAGSTER_PG_PASSWORD_FILE=str(pw_file),
    )
    return env


@pytest.mark.parametrize("right_password", [True, False], ids=["right", "wrong"])
def test_compose_instance_reads_its_password_from_a_file(
    postgres_server: PostgresServer, tmp_path: Path, right_password: bool
) -> None:
    db = fresh_db(postgres_server, f"compose_{'r' if right_password else 'w'}_{os.getpid()}")
    pw = tmp_path / "postgres_password"
    secret = postgres_server.password if right_password else "not-the-password-7361"
    pw.write_text(secret)
    env = compose_env(postgres_server, db, pw)
    instance = (DEPLOY / "dagster.yaml").read_text()
    proc = run_through_entrypoint(["dagster", "instance", "migrate"], env, tmp_path / "h", instance)
    assert secret not in proc.stdout + proc.stderr
    if right_password:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "runs" in dagster_tables(postgres_server, db)
    else:
        assert proc.returncode != 0
        assert "password authentication failed" in proc.stderr
        assert "runs" not in dagster_tables(postgres_server, db)
