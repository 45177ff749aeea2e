"""deploy/compose.yaml against the Compose specification (offline) and its promises.

The schema is the Compose specification's own JSON schema, as vendored in the check-jsonschema
wheel (locked in uv.lock; nothing is downloaded). Beyond the schema: exactly one daemon, every
database client waits for a healthy Postgres, secrets only as files, the instance's run launcher
and coordinator pass Dagster's own config schemas, only loopback ports are published.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.dagster_config import (
    check_class_config,
    check_instance_yaml,
    check_workspace_yaml,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY($|_)|API_KEY|CREDENTIAL", re.IGNORECASE)


def compose_schema() -> dict[str, Any]:
    """The Compose specification schema shipped inside check-jsonschema."""
    files = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((files / "compose-spec.json").read_text())
    return schema


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_compose_file_meets_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_schema()["$id"] == "compose_spec.json"
    assert schema_errors(compose) == []


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("services", "postgres", "healthcheck", "intervall"), "5s"),
        (("services", "dagster-daemon", "depends_on", "postgres", "condition"), "service_happy"),
        (("services", "mlflow", "restart_policy"), "always"),
    ],
)
def test_the_schema_rejects_a_broken_copy(
    compose: dict[str, Any], path: tuple[str, ...], bad: str
) -> None:
    """The validation can fail: unknown keys, a bad enum value. (Compose accepts strings for
    numbers, since ${VAR} interpolation happens after parsing.)"""
    doc = copy.deepcopy(compose)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    assert schema_errors(doc)


def test_exactly_one_dagster_daemon(compose: dict[str, Any]) -> None:
    services = compose["services"]
    daemons = [
        name
        for name, svc in services.items()
        if "dagster-daemon" in svc.get("command", []) or name.startswith("dagster-daemon")
    ]
    assert daemons == ["dagster-daemon"]
    daemon = services["dagster-daemon"]
    assert daemon["command"][:2] == ["dagster-daemon", "run"]
    assert daemon["deploy"]["replicas"] == 1
    assert "container_name" not in daemon or daemon.get("scale", 1) == 1


def test_database_clients_wait_for_a_healthy_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    pg = services["postgres"]
    assert pg["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "pg_isready" in pg["healthcheck"]["test"][1]
    clients = [
        name
        for name, svc in services.items()
        if any(k.startswith("DAGSTER_PG_") for k in svc.get("environment", {}))
        or any(s == "postgres_password" for s in _secret_names(svc))
        or name == "mlflow"
    ]
    assert {"dagster-code", "dagster-webserver", "dagster-daemon", "mlflow"} <= set(clients)
    for name in clients:
        if name in ("postgres", "secrets-init"):
            continue
        cond = services[name]["depends_on"]["postgres"]["condition"]
        assert cond == "service_healthy", name


def _secret_names(svc: dict[str, Any]) -> list[str]:
    return [s if isinstance(s, str) else s["source"] for s in svc.get("secrets", [])]


def _secret_targets(svc: dict[str, Any]) -> set[str]:
    out = set()
    for s in svc.get("secrets", []):
        name = s if isinstance(s, str) else s.get("target", s["source"])
        out.add(name if name.startswith("/") else f"/run/secrets/{name}")
    return out


def test_no_plaintext_secrets_only_files(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        targets = _secret_targets(svc)
        for key, value in svc.get("environment", {}).items():
            if key.endswith("_FILE") or key == "MLFLOW_AUTH_CONFIG_PATH":
                # a path, and the secret it names is mounted in this service
                assert value in targets, (name, key, value)
            else:
                assert not SECRETISH.search(key), f"{name}: {key} looks like a secret value"
                assert "://" not in str(value) or "@" not in str(value), (name, key)
        for secret in _secret_names(svc):
            assert secret in compose["secrets"], (name, secret)
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    lines = (DEPLOY / "secrets" / ".gitignore").read_text().splitlines()
    assert [ln for ln in lines if ln and not ln.startswith("#")][0] == "*"


def test_files_the_stack_mounts_exist(compose: dict[str, Any]) -> None:
    for config in compose["configs"].values():
        assert (DEPLOY / config["file"]).is_file(), config
    for svc in compose["services"].values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (DEPLOY / src).exists(), vol
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_only_authenticated_loopback_ports_are_published(compose: dict[str, Any]) -> None:
    services = compose["services"]
    published = {n: s["ports"] for n, s in services.items() if s.get("ports")}
    assert set(published) == {"dagster-webserver", "mlflow", "signals-paper"}
    for ports in published.values():
        assert all(p.startswith("127.0.0.1:") for p in ports)
    web = services["dagster-webserver"]
    assert web["command"][web["command"].index("-h") + 1] == "127.0.0.1"
    # 8080 is the proxy's: it shares the webserver's network namespace
    proxy = services["dagster-auth-proxy"]
    assert proxy["network_mode"] == "service:dagster-webserver"
    assert web["ports"] == ["127.0.0.1:8080:8080"]
    mlflow = services["mlflow"]["command"]
    assert mlflow[mlflow.index("--app-name") + 1] == "basic-auth"


def test_s3_init_creates_the_buckets_the_stack_uses(compose: dict[str, Any]) -> None:
    services = compose["services"]
    created = services["s3-init"]["command"][2:]
    lake = services["dagster-code"]["environment"]["ALPACA_IMPROVED_LAKE_URI"]
    cmd = services["mlflow"]["command"]
    artifacts = cmd[cmd.index("--artifacts-destination") + 1]
    assert sorted(created) == sorted(u.split("/")[2] for u in (lake, artifacts))
    assert services["mlflow"]["depends_on"]["s3-init"]["condition"] == (
        "service_completed_successfully"
    )


def test_the_lake_read_cache_is_on_a_writable_tmpfs(compose: dict[str, Any]) -> None:
    """Every service with the S3 lake has its read cache under a tmpfs (roots are read-only)."""
    users = {n: s for n, s in compose["services"].items()
             if "ALPACA_IMPROVED_LAKE_URI" in (s.get("environment") or {})}  # fmt: skip
    assert {"dagster-code", "live-runner-paper"} <= set(users)
    for name, svc in users.items():
        cache = svc["environment"]["ALPACA_IMPROVED_LAKE_CACHE"]
        assert svc.get("read_only") is True, name
        assert any(cache.startswith(t.rstrip("/") + "/") for t in svc["tmpfs"]), (name, cache)


def test_signals_service_shares_its_runners_journal_behind_auth(compose: dict[str, Any]) -> None:
    """One signals service per live runner: the runner's volume (its journal), the real
    command, the dashboard behind basic auth with a password file, published on loopback."""
    svc = compose["services"]["signals-paper"]
    runner = compose["services"]["live-runner-paper"]
    assert svc["volumes"] == runner["volumes"]
    assert svc["command"][:3] == ["alpaca-improved", "signals", "serve"]
    env = svc["environment"]
    assert env["ALPACA_IMPROVED_DASHBOARD_USER"]
    assert env["ALPACA_IMPROVED_DASHBOARD_PASSWORD_FILE"] == "/run/secrets/dashboard_password"
    assert "dashboard_password" in svc["secrets"] and "dashboard_password" in compose["secrets"]
    assert svc["ports"] == ["127.0.0.1:8082:8082"]
    assert "profiles" not in svc


def test_workspace_points_at_the_code_server(compose: dict[str, Any]) -> None:
    workspace = check_workspace_yaml((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["grpc_server"]["host"] in compose["services"]
    code = compose["services"]["dagster-code"]
    assert f"-p {entry['grpc_server']['port']}" in " ".join(code["healthcheck"]["test"])


def test_instance_uses_postgres_from_env_and_valid_launcher_config(tmp_path: Path) -> None:
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_docker import DockerRunLauncher

    text = (DEPLOY / "dagster.yaml").read_text()
    inst = check_instance_yaml(text, tmp_path)
    db = inst["storage"]["postgres"]["postgres_db"]
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert all(isinstance(v, dict) for k, v in db.items() if k != "scheme")  # all from env
    assert db["scheme"] == "postgresql+psycopg2"  # psycopg 3 is not in the images
    assert inst["run_coordinator"]["class"] == "QueuedRunCoordinator"
    check_class_config(QueuedRunCoordinator, inst["run_coordinator"].get("config", {}))
    assert inst["run_launcher"]["class"] == "DockerRunLauncher"
    launcher = inst["run_launcher"]["config"]
    check_class_config(DockerRunLauncher, launcher)
    # run containers join the stack's network and volumes by their fixed names
    compose = yaml.safe_load(COMPOSE.read_text())
    assert launcher["network"] == compose["networks"]["default"]["name"]
    names = {v["name"] for v in compose["volumes"].values() if v and "name" in v}
    for vol in launcher["container_kwargs"]["volumes"]:
        assert vol.split(":")[0] in names, vol
    # env passed through by name is set on the code server (the daemon launches with its env)
    code_env = compose["services"]["dagster-code"]["environment"]
    for var in launcher["env_vars"]:
        name, _, value = var.partition("=")
        assert not SECRETISH.search(name) or name.endswith("_FILE"), var
        assert value or name in code_env, var


def test_pipelines_log_in_to_mlflow_and_mlflow_exposes_metrics(compose: dict[str, Any]) -> None:
    """The tracking server is basic-auth: every pipelines container (the code server and, through
    the launcher, each run container) logs in with a password file; MLflow serves /metrics."""
    secret_names = set(compose["secrets"])
    code = compose["services"]["dagster-code"]
    env = code["environment"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["MLFLOW_TRACKING_USERNAME"]
    pw_file = env["MLFLOW_TRACKING_PASSWORD_FILE"]
    assert "MLFLOW_TRACKING_PASSWORD" not in env  # a file, never a value
    name = pw_file.removeprefix("/run/secrets/")
    assert name in secret_names and name in code["secrets"]
    launcher = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_launcher"]["config"]
    assert "MLFLOW_TRACKING_USERNAME" in launcher["env_vars"]
    assert f"MLFLOW_TRACKING_PASSWORD_FILE={pw_file}" in launcher["env_vars"]
    # the copy run containers get comes from the secrets-init service's list
    assert name in compose["services"]["secrets-init"]["secrets"]
    cmd = compose["services"]["mlflow"]["command"]
    # the metrics directory is on the tmpfs (the root file system is read-only)
    assert cmd[cmd.index("--expose-prometheus") + 1].startswith("/tmp/")
