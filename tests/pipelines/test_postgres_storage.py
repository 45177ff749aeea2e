"""``ALPACA_IMPROVED_DATABASE_URL`` on a real PostgreSQL 15 server started by the tests.

The backfill the demo runs, ``dagster instance migrate``, a sweep logged to MLflow, approval and
the promote_to_live sensor all run on one Postgres database (schemas ``dagster`` and ``mlflow``);
the rows are read back with psycopg2, no SQLite store appears under the data root, and the
password is in no file, log line or MLflow record. A wrong password, an unreachable server or a
missing database fails at start-up with one line, before anything is run or written.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest
from typer.testing import CliRunner

from alpaca_improved_pipelines.cli import app
from alpaca_improved_pipelines.database import prepare_database
from alpaca_improved_pipelines.defs.promotion.assets import approved_manifest, candidates
from alpaca_improved_pipelines.defs.promotion.sensors import deploy_job, promote_to_live
from alpaca_improved_pipelines.defs.research.assets import SWEEPS, leaderboard, walk_forward_asset
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.runner import dagster_instance
from alpaca_improved_pipelines.settings import load_settings
from contracts.database import DATABASE_ENV, PASSWORD_ENV, parse_database_url
from research import experiments
from tests.postgres_server import PostgresServer
from tests.research_lake import fill_lake, quiet, resources_for

FIRST, SIXTIETH = "2024-01-02", "2024-03-27"  # 60 NYSE sessions
FAMILY = "rsi_reversion"  # one family's sweep (the promotion tests sweep them all)
N_POINTS = 6
SWEEP = {"workers": 1, "search": "random", "n_random": N_POINTS}
LENIENT = {  # gates wide open: the promotion tests own the thresholds
    "require_quality_checks": False,
    "min_dsr": 0.0,
    "min_oos_sharpe": -100.0,
    "min_trades": 0,
    "max_drawdown": 1.0,
}
cli = CliRunner()


def _env(home: Path, url: str, symbols: str = "SPY") -> dict[str, str]:
    return {
        "ALPACA_IMPROVED_HOME": str(home),
        "ALPACA_IMPROVED_FSYNC": "0",
        "ALPACA_IMPROVED_SYMBOLS": symbols,
        DATABASE_ENV: url,
    }


@pytest.fixture
def pg_home(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str]]:
    """A data root with ``ALPACA_IMPROVED_DATABASE_URL`` pointing at a fresh database."""
    home = tmp_path / "home"
    for key, value in _env(home, postgres_url).items():
        monkeypatch.setenv(key, value)
    for key in (PASSWORD_ENV, "DAGSTER_HOME"):  # set by the code under test; undone after
        monkeypatch.delenv(key, raising=False)
    yield home, postgres_url


def _query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def _password(url: str) -> str:
    password = urlsplit(url).password
    assert password and len(password) >= 16
    return password


def _assert_no_sqlite_and_no_password(home: Path, password: str) -> None:
    """No SQLite store under the root; the password in no file there (yaml, logs, artifacts)."""
    assert not (home / "mlflow.db").exists()
    found = [p for p in home.rglob("*") if p.suffix in (".db", ".sqlite")]
    assert found == [], f"SQLite stores were created: {found}"
    assert not (home / "dagster_home" / "history").exists()
    assert not (home / "dagster_home" / "schedules").exists()
    for path in home.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), f"password written to {path}"


@pytest.mark.slow
def test_backfill_of_60_sessions_stores_runs_and_events_in_postgres(
    pg_home: tuple[Path, str], capfd: pytest.CaptureFixture[str]
) -> None:
    home, url = pg_home
    res = cli.invoke(app, ["backfill", "--start", FIRST, "--end", SIXTIETH])
    assert res.exit_code == 0, res.output
    assert "materialized 60 sessions in 1 run(s)" in res.output
    runs = _query(url, "SELECT run_id, status FROM dagster.runs")
    assert [status for _, status in runs] == ["SUCCESS"]
    run_id = runs[0][0]
    per_table = dict(
        _query(
            url,
            "SELECT asset_key, count(DISTINCT partition) FROM dagster.event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND run_id = %s GROUP BY 1",
            (run_id,),
        )
    )
    for table in ("stock_bars_1d", "stock_bars_1m", "indicators_1d"):
        assert per_table[json.dumps([table])] == 60, per_table
    (n_events,) = _query(
        url, "SELECT count(*) FROM dagster.event_logs WHERE run_id = %s", (run_id,)
    )
    assert n_events[0] > 60 * 3
    # the instance the UI opens reads the same rows back
    with dagster_instance(load_settings()) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    _assert_no_sqlite_and_no_password(home, _password(url))
    out, err = capfd.readouterr()
    assert _password(url) not in res.output + out + err


def test_dagster_instance_migrate_runs_against_the_generated_yaml(
    pg_home: tuple[Path, str],
) -> None:
    home, url = pg_home
    with dagster_instance(load_settings()):
        pass  # writes dagster.yaml, creates the schemas and Dagster's tables
    dagster_home = home / "dagster_home"
    text = (dagster_home / "dagster.yaml").read_text()
    assert "postgres_db:" in text and f"env: {PASSWORD_ENV}" in text
    assert _password(url) not in text
    dagster = [sys.executable, "-m", "dagster", "instance", "migrate"]
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    ok = subprocess.run(dagster, env=env, capture_output=True, text=True, timeout=180)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "Updating run storage" in ok.stdout + ok.stderr
    assert _password(url) not in ok.stdout + ok.stderr
    (version,) = _query(url, "SELECT version_num FROM dagster.alembic_version")
    assert version[0]
    # the password really comes from the environment: without it dagster cannot connect
    env.pop(PASSWORD_ENV)
    no_pw = subprocess.run(dagster, env=env, capture_output=True, text=True, timeout=180)
    assert no_pw.returncode != 0
    assert PASSWORD_ENV in no_pw.stdout + no_pw.stderr


@pytest.mark.parametrize(
    ("break_url", "what"),
    [
        (lambda u, s: u.replace(s.password, "wrong-password-123"), "wrong user or password"),
        (lambda u, s: u.rsplit("/", 1)[0] + "/no_such_db", "database 'no_such_db' does not"),
        (lambda u, s: u.replace(f":{s.port}/", f":{_closed_port()}/"), "server unreachable"),
    ],
    ids=["wrong-password", "missing-database", "unreachable"],
)
def test_a_database_that_cannot_be_used_fails_at_start_up_in_one_line(
    pg_home: tuple[Path, str], postgres_server: PostgresServer, break_url, what: str
) -> None:
    home, url = pg_home
    bad = break_url(url, postgres_server)
    res = cli.invoke(
        app, ["backfill", "--start", FIRST, "--end", "2024-01-04"], env=_env(home, bad)
    )
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert line.startswith(f"error: {DATABASE_ENV}='postgresql://alpaca:***@127.0.0.1:")
    assert what in line and "\n" not in line and "Traceback" not in line
    assert postgres_server.password not in line and "wrong-password-123" not in line
    assert not (home / "dagster_home").exists()  # failed before the instance or any run
    assert not (home / "lake").exists()


def _closed_port() -> int:
    from tests.postgres_server import free_port

    return free_port()  # nothing listens on a port just released


def test_a_malformed_url_fails_when_settings_load(tmp_path: Path) -> None:
    env = _env(tmp_path, "postgresql://alpaca:hunter2hunter2@db.example/")
    res = cli.invoke(app, ["backfill", "--start", FIRST, "--end", "2024-01-04"], env=env)
    assert res.exit_code == 2
    assert "names no database" in res.output and "hunter2hunter2" not in res.output
    assert not tmp_path.joinpath("dagster_home").exists()


def test_the_switch_flips_our_dagster_yaml_both_ways_and_unset_is_sqlite(
    pg_home: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = pg_home
    cfg = home / "dagster_home" / "dagster.yaml"
    with dagster_instance(load_settings()) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert "postgres_db:" in cfg.read_text()
    monkeypatch.setenv(DATABASE_ENV, "")  # unset: today's embedded default, file rewritten
    with dagster_instance(load_settings()) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    assert "storage:" not in cfg.read_text()
    assert (home / "dagster_home" / "history" / "runs.db").exists()


@pytest.mark.slow
def test_sweep_approval_and_promotion_sensor_on_postgres(pg_home: tuple[Path, str]) -> None:
    """Sweeps log to MLflow on Postgres; the sensor and deploy run on the Postgres instance."""
    home, url = pg_home
    fill_lake(home)
    approve = {"family": FAMILY, "approver": "qa", "reason": "pg", "demo": True}
    sweep, approved = SWEEPS[FAMILY], approved_manifest
    with dagster_instance(load_settings()) as instance:
        res = dg.materialize(
            [sweep, walk_forward_asset({FAMILY: sweep}), leaderboard, candidates, approved],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet(
                {
                    "ops": {
                        f"{FAMILY}_sweep": {"config": SWEEP},
                        "candidates": {"config": LENIENT},
                        "approved_manifest": {"config": approve},
                    }
                }
            ),
        )
        assert res.success
        lake = LakeResource(home=str(home))
        ctx = dg.build_sensor_context(instance=instance, cursor=None, resources={"lake": lake})
        first = promote_to_live(ctx)
        assert isinstance(first, dg.SensorResult) and first.run_requests
        assert len(first.run_requests) == 1
        req = first.run_requests[0]
        out = deploy_job.execute_in_process(
            run_config=req.run_config, instance=instance, resources={"lake": lake}
        )
        assert out.success
    assert (home / "live" / "deployments" / f"{FAMILY}.json").exists()
    # MLflow's rows are in the mlflow schema: the sweep's parent run, finished
    sweeps_logged = _query(
        url,
        "SELECT e.name, r.status FROM mlflow.runs r JOIN mlflow.experiments e "
        "USING (experiment_id) JOIN mlflow.tags t ON t.run_uuid = r.run_uuid "
        "WHERE t.key = 'alpaca_improved.kind' AND t.value = 'sweep'",
    )
    assert sweeps_logged == [(f"alpaca-improved/{FAMILY}", "FINISHED")]
    trials = _query(url, "SELECT value FROM mlflow.latest_metrics WHERE key = 'n_trials'")
    assert trials == [(float(N_POINTS),)]  # the trial ledger counts every point
    variants = _query(
        url,
        "SELECT count(*) FROM mlflow.tags WHERE key = 'alpaca_improved.kind' AND value = 'variant'",
    )
    assert variants == [(3,)]  # the sweep's top_k child runs
    # research reads the same store (notebooks, `alpaca-improved experiments compare`)
    assert FAMILY in experiments.list_experiments(home)
    assert len(experiments.compare(FAMILY, home=home, kind="variant")) == 3
    models = _query(url, "SELECT name FROM mlflow.registered_models")
    assert models == [(f"alpaca-improved-{FAMILY}",)]
    # and the Dagster runs (materialize + deploy) are in the dagster schema
    statuses = _query(url, "SELECT status FROM dagster.runs")
    assert sorted(s for (s,) in statuses) == ["SUCCESS", "SUCCESS"]
    password = _password(url)
    for table, column in (("params", "value"), ("tags", "value")):
        leaked = _query(
            url, f"SELECT count(*) FROM mlflow.{table} WHERE {column} LIKE %s", (f"%{password}%",)
        )
        assert leaked == [(0,)]
    _assert_no_sqlite_and_no_password(home, password)


def test_a_user_without_create_privilege_uses_schemas_a_dba_made(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Managed databases often deny CREATE: a clear grant-or-create line, then it works."""
    db_name = urlsplit(postgres_url).path.lstrip("/")
    role, password = f"app_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    conn = postgres_server.connect(db_name)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (password,))
        url = f"postgresql://{role}:{password}@127.0.0.1:{postgres_server.port}/{db_name}"
        with pytest.raises(ConfigError) as err:
            prepare_database(parse_database_url(url))
        msg = str(err.value)
        assert msg.startswith(f"{DATABASE_ENV}='postgresql://{role}:***@")
        assert "permission denied" in msg and "grant the user CREATE on database" in msg
        assert password not in msg
        with conn.cursor() as cur:  # what the DBA does instead
            for schema in ("dagster", "mlflow"):
                cur.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
        prepare_database(parse_database_url(url))  # no CREATE on the database needed now
    finally:
        conn.close()
