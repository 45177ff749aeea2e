"""`make stack` end to end: every compose service as a local process, used through its front door.

Starts deploy/stack/run_stack.py (compose.yaml's commands and environments on 127.0.0.1, secrets as
files), then: the Dagster UI behind the nginx basic-auth proxy refuses anonymous and wrong
credentials and serves the right ones; a run launched through the proxy's GraphQL API is queued,
dequeued by the one daemon, runs in the code location and succeeds, its rows in Postgres and its
bars in the S3 server's lake bucket; MLflow's basic-auth app refuses anonymous logging and accepts
the admin's, the artifact landing in the S3 server's bucket; the live runner answers /health.
Then SIGTERM: everything stops, no process of the stack remains, and no secret value appears in
any service's log. A fast test checks the plan alone: compose's commands with only the stated
translations, secrets only as files.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_STACK = REPO / "deploy" / "stack" / "run_stack.py"
UP_BUDGET = 300.0  # seconds; MLflow's four workers dominate on a busy 2-core machine
RUN_BUDGET = 240.0

pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None or shutil.which("redis-server") is None,
    reason="nginx or redis-server not installed (make stack / make services install them)",
)


def http(
    url: str, auth: tuple[str, str] | None = None, body: dict[str, Any] | None = None
) -> tuple[int, bytes]:
    """(status, body) of a GET, or a JSON POST when ``body`` is given; HTTP errors are returned."""
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def graphql(ui: str, auth: tuple[str, str], query: str, **variables: Any) -> dict[str, Any]:
    status, body = http(f"{ui}graphql", auth, {"query": query, "variables": variables})
    assert status == 200, body[:500]
    out: dict[str, Any] = json.loads(body)
    assert "errors" not in out, out
    return out["data"]


PARTITIONS = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
  ... on AssetNode { partitionKeys } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId status } }
  ... on PythonError { message } ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""


def wait_up(proc: subprocess.Popen[bytes], root: Path, log: Path) -> dict[str, Any]:
    t0 = time.monotonic()
    while not (root / "stack.json").exists():
        assert proc.poll() is None, (
            f"run_stack exited {proc.returncode}:\n{log.read_text()[-4000:]}"
        )
        assert time.monotonic() - t0 < UP_BUDGET, f"not up in {UP_BUDGET} s:\n{log.read_text()}"
        time.sleep(0.5)
    info: dict[str, Any] = json.loads((root / "stack.json").read_text())
    return info


def check_ui(ui: str, login: tuple[str, str]) -> None:
    assert http(f"{ui}healthz")[0] == 200  # the proxy's own probe, no credentials
    assert http(f"{ui}server_info")[0] == 401
    assert http(f"{ui}server_info", (login[0], "not-the-password"))[0] == 401
    status, body = http(f"{ui}server_info", login)
    assert status == 200 and b"dagster_webserver_version" in body, body[:300]


def launch_and_finish(ui: str, login: tuple[str, str]) -> tuple[str, str]:
    """Launch stock_bars_1d for its first partition through the proxy; wait for its end."""
    node = graphql(ui, login, PARTITIONS, path=["stock_bars_1d"])["assetNodeOrError"]
    partition = node["partitionKeys"][0]
    params = {
        "selector": {
            "repositoryLocationName": "alpaca_improved",
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": ["stock_bars_1d"]}],
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
    }
    launched = graphql(ui, login, LAUNCH, params=params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert launched["run"]["status"] == "QUEUED"  # the QueuedRunCoordinator: the daemon's turn
    t0 = time.monotonic()
    while time.monotonic() - t0 < RUN_BUDGET:
        status = graphql(ui, login, STATUS, id=run_id)["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return run_id, status
        time.sleep(1)
    raise AssertionError(f"run {run_id} still {status} after {RUN_BUDGET} s")


def run_rows(info: dict[str, Any], run_id: str) -> tuple[str, set[str]]:
    """The run's status in Postgres' runs table and its event types in event_logs."""
    import psycopg2

    pg = info["postgres"]
    conn = psycopg2.connect(
        host=pg["host"],
        port=pg["port"],
        user=pg["user"],
        password=Path(pg["password_file"]).read_text().strip(),
        dbname="dagster",
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
            (status,) = cur.fetchone()
            cur.execute(
                "SELECT DISTINCT dagster_event_type FROM event_logs WHERE run_id = %s", (run_id,)
            )
            return status, {row[0] for row in cur.fetchall() if row[0]}
    finally:
        conn.close()


def check_mlflow(url: str, login: tuple[str, str], tmp: Path) -> str:
    """Anonymous logging is refused; the admin logs a run with a metric and an artifact."""
    create = f"{url}api/2.0/mlflow/experiments/create"
    assert http(create, None, {"name": "anonymous"})[0] == 401
    assert http(create, (login[0], "not-the-password"), {"name": "wrong"})[0] == 401
    env = {
        "MLFLOW_TRACKING_URI": url.rstrip("/"),
        "MLFLOW_TRACKING_USERNAME": login[0],
        "MLFLOW_TRACKING_PASSWORD": login[1],
    }
    script = (
        "import mlflow, pathlib\n"
        "mlflow.set_experiment('stack-smoke')\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.log_metric('sharpe', 1.25)\n"
        f"    p = pathlib.Path({str(tmp)!r}) / 'note.txt'; p.write_text('hello')\n"
        "    mlflow.log_artifact(str(p))\n"
        "print(run.info.run_id)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))},
            **env,
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_id = out.stdout.strip().splitlines()[-1]
    status, body = http(f"{url}api/2.0/mlflow/runs/get?run_id={run_id}", login)
    assert status == 200
    metrics = json.loads(body)["run"]["data"]["metrics"]
    assert [(m["key"], m["value"]) for m in metrics] == [("sharpe", 1.25)]
    # Prometheus metrics (--expose-prometheus), behind the same basic auth
    assert http(f"{url}metrics")[0] == 401
    status, body = http(f"{url}metrics", login)
    assert status == 200 and b"mlflow_http_request_total" in body, body[:300]
    return run_id


def bucket_keys(info: dict[str, Any], bucket: str) -> list[str]:
    import boto3

    secrets = Path(info["root"]) / "secrets"
    s3 = boto3.client(
        "s3",
        endpoint_url=info["urls"]["s3"],
        region_name="us-east-1",
        aws_access_key_id=(secrets / "s3_access_key_id").read_text().strip(),
        aws_secret_access_key=(secrets / "s3_secret_access_key").read_text().strip(),
    )
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def stack_processes(root: Path) -> list[str]:
    """Processes still running with the stack's root in their command line or as their cwd."""
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(root) in cmd or cwd.startswith(str(root)):
            left.append(f"{entry.name}: {cmd[:200]}")
    return left


def secret_values(root: Path) -> dict[str, str]:
    values = {p.name: p.read_text().strip() for p in (root / "secrets").iterdir()}
    values.pop("mlflow_basic_auth_ini")  # holds the admin password, checked below
    values.pop("dagster_htpasswd")  # a bcrypt hash; the password itself is checked below
    values.pop("s3_access_key_id")  # an access key id is an identifier that S3 logs by design
    logins = json.loads((root / "credentials.json").read_text())
    values.update({f"{k}_password": v["password"] for k, v in logins.items()})
    return values


@pytest.mark.slow
def test_stack_serves_through_its_front_doors_and_stops_clean(tmp_path: Path) -> None:
    # postgres and nginx run as other users: the root's parents must be searchable (tmp_path's
    # are not)
    base = Path(tempfile.mkdtemp(prefix="alpaca-stack-test-"))
    base.chmod(0o711)
    root = base / "stack"
    log = tmp_path / "run_stack.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(RUN_STACK), "--root", str(root)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        info = wait_up(proc, root, log)
        logins = json.loads((root / "credentials.json").read_text())
        ui, mlflow_url = info["urls"]["dagster_ui"], info["urls"]["mlflow"]
        ui_login = (logins["dagster_ui"]["user"], logins["dagster_ui"]["password"])
        mlflow_login = (logins["mlflow"]["user"], logins["mlflow"]["password"])

        check_ui(ui, ui_login)
        status, body = http(info["urls"]["live_runner_health"])
        assert status == 200, body[:300]

        run_id, final = launch_and_finish(ui, ui_login)
        code_log = Path(info["services"]["dagster-code"]["log"]).read_text()
        assert final == "SUCCESS", f"run {run_id}: {final}\n{code_log[-3000:]}"
        db_status, events = run_rows(info, run_id)
        assert db_status == "SUCCESS"
        # queued at launch (asserted in launch_and_finish), then STARTING: only the daemon's
        # queue loop launches a queued run
        assert {"PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_SUCCESS"} <= events, events
        # the run wrote its bars to the lake bucket (ALPACA_IMPROVED_LAKE_URI, keys from files)
        lake = bucket_keys(info, "lake")
        assert any("stock_bars_1d" in k and k.endswith(".parquet") for k in lake), lake[:20]

        # the signals service: /health open, the dashboard only with its login, reading the
        # runner's journal from the shared volume
        signals_url = info["urls"]["signals"]
        status, body = http(f"{signals_url}health")
        assert status == 200 and json.loads(body)["ok"] is True, body[:300]
        assert http(f"{signals_url}dashboard/api/state")[0] == 401
        dash = logins["signals_dashboard"]
        status, body = http(f"{signals_url}dashboard/api/state", (dash["user"], dash["password"]))
        assert status == 200, body[:300]

        mlflow_run = check_mlflow(mlflow_url, mlflow_login, tmp_path)
        assert any(
            k.endswith(f"{mlflow_run}/artifacts/note.txt") for k in bucket_keys(info, "mlflow")
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, log.read_text()[-3000:]
    assert stack_processes(root) == []
    for svc in info["services"].values():
        if svc["pid"]:
            assert not Path(f"/proc/{svc['pid']}").exists()
    logs = {p.name: p.read_text(errors="replace") for p in (root / "logs").iterdir()}
    logs["run_stack"] = log.read_text()
    for name, value in secret_values(root).items():
        leaked = [n for n, text in logs.items() if value in text]
        assert leaked == [], f"secret {name} appears in {leaked}"
    shutil.rmtree(base)


def test_plan_runs_compose_commands_and_environments_with_only_the_stated_translations(
    tmp_path: Path,
) -> None:
    """Fast, nothing started: each planned process is compose's command and environment with
    hosts, ports and container paths made local, and secrets only ever as files."""
    import yaml

    sys.path.insert(0, str(RUN_STACK.parent))
    from run_stack import ENTRYPOINT, Stack

    root = tmp_path / "root"
    root.mkdir()
    stack = Stack(root)
    stack.make_secrets()
    stack.plan()
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())["services"]
    planned = {s.name: s for s in stack.services}
    skipped = set(stack.spec["skip"])
    assert set(planned) == (set(compose) - skipped) | {"redis"}

    web = planned["dagster-webserver"]
    workspace = root / "fs/dagster-webserver/opt/dagster/app/workspace.yaml"
    assert web.argv == [
        "/bin/sh", str(ENTRYPOINT), "dagster-webserver", "-h", "127.0.0.1",
        "-p", str(stack.port("dagster-webserver", 3000)), "-w", str(workspace),
    ]  # fmt: skip
    grpc = yaml.safe_load(workspace.read_text())["load_from"][0]["grpc_server"]
    assert grpc["host"] == "127.0.0.1" and grpc["port"] == stack.port("dagster-code", 4000)
    daemon = planned["dagster-daemon"]
    assert daemon.argv[2:4] == ["dagster-daemon", "run"]
    instance = yaml.safe_load((Path(daemon.env["DAGSTER_HOME"]) / "dagster.yaml").read_text())
    assert instance["run_launcher"]["class"] == "DefaultRunLauncher"
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    runner = planned["live-runner-paper"].argv
    assert runner[runner.index("--broker") + 1] == "sim"
    mlflow = planned["mlflow"].argv
    assert mlflow[2:5] == ["mlflow", "server", "--app-name"] and "basic-auth" in mlflow
    assert mlflow[mlflow.index("--host") + 1] == "127.0.0.1"
    conf = (root / "fs/dagster-auth-proxy/etc/nginx/dagster-auth-proxy.conf").read_text()
    assert f"listen 127.0.0.1:{stack.port('dagster-auth-proxy', 8080)};" in conf
    assert f"proxy_pass http://127.0.0.1:{stack.port('dagster-webserver', 3000)};" in conf
    assert str(root / "fs/dagster-auth-proxy/etc/dagster-auth/htpasswd") in conf

    values = [v for v in stack.secret_values.values()]
    for name, svc in planned.items():
        spec = compose.get(name, {})
        # every compose variable is there (translated), and nothing secret is a value
        assert set(spec.get("environment", {})) <= set(svc.env), name
        text = " ".join([*svc.argv, *svc.env.values()])
        assert not [v for v in values if v in text], f"{name}: a secret in its argv or env"
        assert not re.search(r"(?<![\w.-])(postgres|s3|mlflow|dagster-code):\d", text), name
        for key, value in svc.env.items():
            if key.endswith("_FILE"):
                assert Path(value).is_file() and Path(value).is_relative_to(root), (name, key)
                assert Path(value).stat().st_mode & 0o777 == 0o400, (name, key)
