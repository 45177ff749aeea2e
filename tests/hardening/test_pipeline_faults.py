"""Pipeline faults fail closed (issue 15, items 2, 3, 5, 12 and the pipeline-side errors).

Each case gives one clear line (exit 2) naming the input and the fix, and leaves the data root
exactly as it was: a changed universe or start date never rewrites existing partitions unless
``--replace`` asks for it; no session after today is loaded; a copied root never writes into the
original; a SIGKILLed backfill's run does not stay STARTED; a file, a read-only root, a full disk,
a negative seed, an unknown job, a missing or rejected vendor key, and a demo that starts after
the partition start are refused up front.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import dagster as dg
import pytest
from typer.testing import CliRunner

from alpaca_improved_pipelines import settings as settings_mod
from alpaca_improved_pipelines.cli import app
from alpaca_improved_pipelines.commands import run_backfill
from alpaca_improved_pipelines.definitions import defs as load_defs
from alpaca_improved_pipelines.defs.resources import build_resources
from alpaca_improved_pipelines.lake import lineage, storage
from alpaca_improved_pipelines.runner import dagster_instance
from alpaca_improved_pipelines.settings import Settings
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from tests.fakes.alpaca_market import AlpacaMarketFake
from tests.fakes.fixtures import *  # noqa: F403 - the vendor fakes (alpaca_market, ...)
from tests.fakes.fixtures import ALPACA_KEY, ALPACA_SECRET, FakeMarket

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("SPY", "AAPL")
FIRST, LAST = "2024-01-02", "2024-01-10"  # the base root: 7 sessions
cli = CliRunner()


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {
        "ALPACA_IMPROVED_HOME": str(home),
        "ALPACA_IMPROVED_FSYNC": "0",
        "ALPACA_IMPROVED_SYMBOLS": ",".join(SYMBOLS),
        "ALPACA_IMPROVED_SOURCE": "synthetic",
        "ALPACA_IMPROVED_START": "",
        "ALPACA_IMPROVED_SEED": "",
        **extra,
    }


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_line_error(output: str, exit_code: int) -> str:
    """The error line of a refused command (asserting exit 2 and no traceback)."""
    assert exit_code == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    return errors[0]


def _settings(home: Path, **kw: object) -> Settings:
    base: dict[str, object] = {"home": home, "symbols": SYMBOLS, "fsync": False}
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def base_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with market data for SPY and AAPL over 7 sessions (built once)."""
    home = tmp_path_factory.mktemp("base") / "home"
    with mock.patch.dict(os.environ, _env(home)):  # the code location reads the environment
        run_backfill(FIRST, LAST, None, 60, "market_data_job")
    return home


@pytest.fixture
def root(base_root: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(base_root, home)
    return home


# --- item 2: a changed universe or start date never silently rewrites history ---


@pytest.mark.slow
def test_narrowed_universe_is_refused_and_changes_nothing(root: Path) -> None:
    before = snapshot(root)
    res = cli.invoke(
        app,
        ["backfill", "--start", "2024-01-08", "--end", LAST],
        env=_env(root, ALPACA_IMPROVED_SYMBOLS="SPY"),
    )
    line = one_line_error(res.output, res.exit_code)
    assert "stock_bars_1m/session=2024-01-08" in line and "drops AAPL" in line
    assert "--replace" in line
    assert snapshot(root) == before


def test_raised_start_is_refused_naming_the_shorter_history(root: Path) -> None:
    before = snapshot(root)
    res = cli.invoke(
        app,
        ["backfill", "--start", "2024-01-08", "--end", LAST],
        env=_env(root, ALPACA_IMPROVED_START="2024-01-05"),
    )
    line = one_line_error(res.output, res.exit_code)
    assert "indicators_1d/session=2024-01-08" in line
    assert "5 sessions from 2024-01-02 -> 2 sessions from 2024-01-05" in line
    assert snapshot(root) == before


def test_partitions_record_their_universe_source_and_history(root: Path) -> None:
    lake = root / "lake"
    assert lineage.stored(lake, "stock_bars_1d", "2024-01-09") == {
        "symbols": ["AAPL", "SPY"],
        "source": "synthetic/seed=7",
    }
    assert lineage.stored(lake, "stock_bars_5m", "2024-01-09") == lineage.stored(
        lake, "stock_bars_1m", "2024-01-09"
    )
    assert lineage.stored(lake, "indicators_1d", "2024-01-09") == {
        "symbols": ["AAPL", "SPY"],
        "history_start": "2024-01-02",
        "history_sessions": 6,
    }


@pytest.mark.slow
def test_replace_rewrites_the_range_and_every_dependent_partition(root: Path) -> None:
    lake = root / "lake"
    later = {s: storage.file_sha256(storage.partition_path(lake, "stock_bars_1d", s)) for s in
             ("2024-01-08", "2024-01-09", "2024-01-10")}  # fmt: skip
    res = cli.invoke(
        app,
        ["backfill", "--start", "2024-01-03", "--end", "2024-01-04", "--replace"],
        env=_env(root, ALPACA_IMPROVED_SYMBOLS="SPY"),
    )
    assert res.exit_code == 0, res.output
    for s in ("2024-01-03", "2024-01-04"):
        for table in ("stock_bars_1m", "stock_bars_1d", "stock_bars_5m", "indicators_1d"):
            assert lineage.stored(lake, table, s)["symbols"] == ["SPY"], (table, s)
    # indicators after the range read the replaced daily bars: they are replaced too
    for s in ("2024-01-05", "2024-01-08", "2024-01-10"):
        assert lineage.stored(lake, "indicators_1d", s)["symbols"] == ["SPY"], s
    # bars after the range are not computed from the replaced ones: untouched
    for s, sha in later.items():
        assert storage.file_sha256(storage.partition_path(lake, "stock_bars_1d", s)) == sha


def test_a_dagster_run_with_a_narrowed_universe_fails_before_writing(
    root: Path, project_defs: dg.Definitions
) -> None:
    """The same guard holds for runs launched from the UI or a schedule (no CLI pre-check)."""
    before = snapshot(root / "lake")
    defs = dg.Definitions(
        assets=list(project_defs.assets or []),
        asset_checks=list(project_defs.asset_checks or []),
        jobs=list(project_defs.jobs or []),
        resources=build_resources(_settings(root, symbols=("SPY",))),
    )
    tags = {
        "dagster/asset_partition_range_start": "2024-01-08",
        "dagster/asset_partition_range_end": "2024-01-09",
    }
    with dg.instance_for_test() as instance:
        res = defs.resolve_job_def("market_data_job").execute_in_process(
            instance=instance, tags=tags, raise_on_error=False
        )
    assert not res.success
    failures = [e for e in res.all_events if e.is_step_failure]
    assert failures and "drops AAPL" in str(failures[0].step_failure_data.user_failure_data)
    assert all(not e.is_step_up_for_retry for e in res.all_events)  # fails at once
    assert snapshot(root / "lake") == before


@pytest.fixture(scope="module")
def project_defs() -> dg.Definitions:
    return load_defs()


# --- item 3: no session after today ---


@pytest.fixture
def pinned_today(monkeypatch: pytest.MonkeyPatch) -> dt.date:
    """Today is Thursday 2024-01-11 in New York (late evening UTC is still the 11th there)."""
    now = dt.datetime(2024, 1, 12, 3, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(settings_mod, "utc_now", lambda: now)
    return dt.date(2024, 1, 11)


def test_future_sessions_are_refused_by_the_cli(root: Path, pinned_today: dt.date) -> None:
    before = snapshot(root)
    res = cli.invoke(
        app, ["backfill", "--start", "2024-01-11", "--end", "2024-01-12"], env=_env(root)
    )
    line = one_line_error(res.output, res.exit_code)
    assert "--end 2024-01-12 is in the future (today is 2024-01-11" in line
    res = cli.invoke(
        app, ["backfill", "--start", "2029-06-01", "--end", "2029-06-05"], env=_env(root)
    )
    assert "--start 2029-06-01 is in the future" in one_line_error(res.output, res.exit_code)
    assert snapshot(root) == before


def test_a_run_for_a_future_partition_fails_before_writing(
    root: Path, project_defs: dg.Definitions, pinned_today: dt.date
) -> None:
    before = snapshot(root / "lake")
    defs = dg.Definitions(
        assets=list(project_defs.assets or []),
        asset_checks=list(project_defs.asset_checks or []),
        jobs=list(project_defs.jobs or []),
        resources=build_resources(_settings(root)),
    )
    tags = {
        "dagster/asset_partition_range_start": "2024-01-11",
        "dagster/asset_partition_range_end": "2024-01-12",
    }
    with dg.instance_for_test() as instance:
        res = defs.resolve_job_def("market_data_job").execute_in_process(
            instance=instance, tags=tags, raise_on_error=False
        )
    assert not res.success
    failure = next(e for e in res.all_events if e.is_step_failure)
    assert "partition 2024-01-12 is in the future" in str(
        failure.step_failure_data.user_failure_data
    )
    assert snapshot(root / "lake") == before


def test_the_live_runner_refuses_lake_sessions_after_today(tmp_path: Path) -> None:
    import polars as pl

    from live.errors import ConfigError as LiveConfigError
    from live.runner.build import lake_sessions

    lake = tmp_path / "lake"
    for s in ("2024-01-10", "2024-01-11", "2024-01-12"):
        storage.write_partition(pl.DataFrame({"x": [1]}), lake, "stock_bars_1d", s, fsync=False)
    assert lake_sessions(tmp_path, today=dt.date(2024, 1, 12))[-1] == dt.date(2024, 1, 12)
    with pytest.raises(LiveConfigError, match="session=2024-01-12") as err:
        lake_sessions(tmp_path, today=dt.date(2024, 1, 11))
    assert "after today (2024-01-11)" in str(err.value)


# --- item 5: a copied data root never writes into the original ---


def test_research_on_a_copied_root_leaves_the_original_byte_for_byte(tmp_path: Path) -> None:
    tags = RunTags("run-1", "ma_crossover_sweep", "2024-01-02..2024-06-28")
    original = tmp_path / "original"
    tracker = Tracker(original)
    run_id = tracker.start_run("ma_crossover", "sweep", "sweep", tags)
    tracker.log(run_id, params={"fast": 10}, metrics={"sharpe_ratio": 1.0})
    tracker.log_text(run_id, "first", "notes/first.txt")
    tracker.finish(run_id)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = snapshot(original)

    moved = Tracker(copy)  # research on the copy: a new run and artifacts in the experiment
    new_id = moved.start_run("ma_crossover", "sweep-2", "sweep", tags)
    moved.log_text(new_id, "second", "notes/second.txt")
    moved.log_text(run_id, "again", "notes/again.txt")  # an old run of the copy, too
    moved.finish(new_id)

    assert snapshot(original) == before
    assert (copy / "mlartifacts").exists()
    written = {p.name for p in (copy / "mlartifacts").rglob("*.txt")}
    assert {"first.txt", "second.txt", "again.txt"} <= written
    exp = moved.client.get_experiment(moved.experiment_id("ma_crossover"))
    assert exp.artifact_location.startswith((copy / "mlartifacts").resolve().as_uri())


# --- item 12: a SIGKILLed backfill does not leave its run STARTED forever ---


def _run_statuses(dagster_home: Path) -> dict[str, str]:
    """Run id -> status, read-only (opening an instance could race the schema's creation)."""
    uri = f"{(dagster_home / 'history' / 'runs.db').as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as con:
        return dict(con.execute("SELECT run_id, status FROM runs").fetchall())


@pytest.mark.slow
def test_a_sigkilled_backfill_run_is_marked_failed_at_the_next_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, **_env(home, ALPACA_IMPROVED_SYMBOLS="SPY")}
    log = tmp_path / "backfill.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "alpaca_improved_pipelines.cli", "backfill",
         "--start", "2024-01-02", "--end", "2024-06-28", "--batch-size", "200"],
        env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    dagster_home = home / "dagster_home"
    deadline = time.monotonic() + 300
    started: list[str] = []
    while time.monotonic() < deadline and not started and proc.poll() is None:
        time.sleep(0.5)
        if (dagster_home / "history" / "runs.db").exists():
            with contextlib.suppress(sqlite3.Error):  # the schema may be mid-creation
                started = [r for r, s in _run_statuses(dagster_home).items() if s == "STARTED"]
    assert started, f"the backfill never reached a STARTED run: {log.read_text()[-3000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    run_id = started[0]
    assert _run_statuses(dagster_home)[run_id] == "STARTED"
    assert "run_monitoring:\n  enabled: true" in (dagster_home / "dagster.yaml").read_text()

    with dagster_instance(_settings(home, symbols=("SPY",))) as instance:  # the next command
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
        messages = [e.message for e in instance.all_logs(run_id)]
        assert any(f"pid {proc.pid}" in m and "killed" in m for m in messages)
    # nothing half-written: every partition the killed run left is a complete Parquet file
    for path in (home / "lake").rglob("part.parquet"):
        assert storage.read_lineage(path) is not None, path


# --- clear one-line errors instead of tracebacks, nothing written ---


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--job", "nope"], {}, "--job 'nope' is not a backfill job; use one of market_data_job"),
        ([], {"ALPACA_IMPROVED_SEED": "-1"}, "ALPACA_IMPROVED_SEED='-1' is negative"),
        (["--batch-size", "0"], {}, "--batch-size 0 must be at least 1"),
    ],
)
def test_bad_settings_give_one_line(
    root: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    before = snapshot(root)
    res = cli.invoke(
        app, ["backfill", "--start", "2024-01-08", "--end", LAST, *args], env=_env(root, **env)
    )
    assert message in one_line_error(res.output, res.exit_code)
    assert snapshot(root) == before


def test_a_data_root_that_is_a_file_gives_one_line(tmp_path: Path) -> None:
    home = tmp_path / "root"
    home.write_text("not a directory")
    for cmd in (["backfill", "--start", FIRST, "--end", LAST], ["demo"]):
        res = cli.invoke(app, cmd, env=_env(home))
        line = one_line_error(res.output, res.exit_code)
        assert f"ALPACA_IMPROVED_HOME='{home}' is not a directory" in line
    assert home.read_text() == "not a directory"


def test_demo_starting_after_the_partition_start_is_refused_up_front(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    started = time.monotonic()
    res = cli.invoke(app, ["demo", "--start", "2024-03-01"], env=_env(home))
    line = one_line_error(res.output, res.exit_code)
    assert "--start 2024-03-01 is after ALPACA_IMPROVED_START=2024-01-02" in line
    assert "ALPACA_IMPROVED_START=2024-03-01" in line
    assert time.monotonic() - started < 30
    assert not (home / "lake").exists() and not (home / "dagster_home").exists()


def _vendor_env(root: Path, market: AlpacaMarketFake, **extra: str) -> dict[str, str]:
    vendor = {
        "ALPACA_IMPROVED_SOURCE": "alpaca",
        "ALPACA_DATA_URL": market.url,
        "ALPACA_TRADING_URL": market.url,
        "ALPACA_API_KEY": ALPACA_KEY,
        "ALPACA_SECRET_KEY": ALPACA_SECRET,
        "ALPACA_REQUESTS_PER_MINUTE": "10000",
    }
    return _env(root, **{**vendor, **extra})


def test_a_rejected_vendor_key_is_one_line_before_any_run(
    root: Path, fake_market: FakeMarket
) -> None:
    with AlpacaMarketFake(fake_market, key=ALPACA_KEY, secret=ALPACA_SECRET) as market:
        before = snapshot(root)
        env = _vendor_env(root, market, ALPACA_SECRET_KEY="wrong-secret-value")
        res = cli.invoke(app, ["backfill", "--start", "2024-01-08", "--end", LAST], env=env)
        line = one_line_error(res.output, res.exit_code)
        assert "alpaca source failed its check before the run" in line
        assert "HTTP 401 the API keys were rejected" in line
        assert "wrong-secret-value" not in res.output
        assert len(market.hits("/")) == 1  # one small request, no run, no retries
        assert snapshot(root) == before


def test_a_missing_vendor_key_is_one_line_before_any_run(
    root: Path, fake_market: FakeMarket
) -> None:
    with AlpacaMarketFake(fake_market, key=ALPACA_KEY, secret=ALPACA_SECRET) as market:
        before = snapshot(root)
        env = _vendor_env(root, market, ALPACA_API_KEY="")
        res = cli.invoke(app, ["backfill", "--start", "2024-01-08", "--end", LAST], env=env)
        assert "ALPACA_API_KEY is not set" in one_line_error(res.output, res.exit_code)
        assert not market.hits("/")
        assert snapshot(root) == before


# --- a read-only root and a full disk (real mounts; we are root in CI) ---


@contextlib.contextmanager
def _mounted(*args: str) -> Iterator[None]:
    target = args[-1]
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", target], check=False)


def test_a_read_only_root_is_refused_for_a_command_that_writes(root: Path, tmp_path: Path) -> None:
    view = tmp_path / "readonly"
    view.mkdir()
    before = snapshot(root)
    with _mounted("--bind", str(root), str(view)):
        done = subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True)
        if done.returncode != 0:
            pytest.skip("cannot remount read-only here")
        for cmd in (["backfill", "--start", "2024-01-11", "--end", "2024-01-12"], ["demo"]):
            res = cli.invoke(app, cmd, env=_env(view))
            line = one_line_error(res.output, res.exit_code)
            assert f"ALPACA_IMPROVED_HOME='{view}' is not writable" in line
            assert "Read-only file system" in line
    assert snapshot(root) == before


@pytest.mark.slow
def test_a_full_disk_gives_one_line_and_leaves_the_root_as_it_was(
    root: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    pages_kb = sum(-(-p.stat().st_size // 4096) * 4 for p in root.rglob("*") if p.is_file())
    with _mounted("-t", "tmpfs", "-o", f"size={pages_kb + 4096}k", "tmpfs", str(disk)):
        home = disk / "home"
        shutil.copytree(root, home)
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(0, free - (96 << 10)))  # ~96 KiB left
        before = snapshot(home)
        res = subprocess.run(
            [sys.executable, "-m", "alpaca_improved_pipelines.cli", "backfill",
             "--start", "2024-01-11", "--end", "2024-01-12"],
            env={**os.environ, **_env(home)}, cwd=ROOT, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        line = one_line_error(res.stdout + res.stderr, res.returncode)
        assert "is full" in line and str(home) in line
        after = snapshot(home)
        lake = {k: v for k, v in before.items() if k.startswith("lake/")}
        assert all(after.get(k) == v for k, v in lake.items())  # nothing existing changed
        for new in set(after) - set(before):  # a new partition is whole, never half-written
            if new.startswith("lake/"):
                assert storage.read_lineage(home / new) is not None, new
        assert not list(home.rglob(".part.parquet.tmp-*"))


def test_the_partition_writer_on_a_full_disk_keeps_the_old_file(tmp_path: Path) -> None:
    import polars as pl

    disk = tmp_path / "disk"
    disk.mkdir()
    with _mounted("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)):
        small = pl.DataFrame({"x": [1, 2, 3]})
        old = storage.write_partition(small, disk, "stock_bars_1d", "2024-01-02", fsync=False)
        before = old.path.read_bytes()
        big = pl.DataFrame({"b": [os.urandom(64) for _ in range(10_000)]})  # incompressible
        with pytest.raises(OSError) as err:
            storage.write_partition(big, disk, "stock_bars_1d", "2024-01-02", fsync=False)
        assert err.value.errno == 28  # ENOSPC
        assert old.path.read_bytes() == before
        assert [p.name for p in old.path.parent.iterdir()] == ["part.parquet"]
