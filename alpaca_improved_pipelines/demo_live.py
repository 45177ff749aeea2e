"""Demo tail: approve the best candidate (a demo approval), let the promote_to_live sensor
deploy it, and run the live runner in sim over the last sessions of the lake; then the intraday
path: one session of a minute-bar deployment on the lake's minute bars replayed through the
runner's stream feed (``live run --market-data stream``)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
from rich.console import Console

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.settings import Settings
from contracts import paths

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
LIVE_SESSIONS = 5
INTRADAY_DIR = "demo_intraday"  # the intraday demo's own data root (its lake: the demo's)
INTRADAY_SYMBOLS = ("SPY", "QQQ", "AAPL", "NVDA")


def _run(job: dg.JobDefinition, instance: dg.DagsterInstance, config: dict) -> None:
    res = job.execute_in_process(
        instance=instance, run_config={**QUIET, **config}, raise_on_error=False
    )
    if not res.success:
        raise ConfigError(f"run {res.run_id} of {job.name} failed; open it in the Dagster UI")


def choose_candidate(home: Path) -> tuple[str, bool, str]:
    """(family, allow_failed_gates, note): the best passing candidate by DSR, else the best."""
    cands = json.loads(paths.candidates_path(home).read_text())["candidates"]
    if not cands:
        raise ConfigError("no candidates; run the research job first")
    ranked = sorted(cands, key=lambda c: (c["passed"], c["dsr"] or -1.0), reverse=True)
    best = ranked[0]
    note = "passed all gates" if best["passed"] else f"gates failed: {best['reasons']}"
    return best["family"], not best["passed"], note


def approve_and_promote(settings: Settings, console: Console) -> str:
    """Candidates → demo approval → sensor → deployment file; returns the deployed family."""
    from alpaca_improved_pipelines.definitions import defs as load_defs
    from alpaca_improved_pipelines.defs.promotion.sensors import promote_to_live
    from alpaca_improved_pipelines.runner import dagster_instance

    defs = load_defs()
    home = settings.home.resolve()
    with dagster_instance(settings) as instance:
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey("candidates")}
        )
        _run(job, instance, {})
        family, allow, note = choose_candidate(home)
        cfg = {
            "family": family,
            "approver": "make demo",
            "demo": True,
            "reason": f"demo approval of the best candidate ({note})",
            "allow_failed_gates": allow,
        }
        _run(
            defs.resolve_job_def("approve_job"),
            instance,
            {"ops": {"approved_manifest": {"config": cfg}}},
        )
        ctx = dg.build_sensor_context(
            instance=instance, resources={"lake": LakeResource(home=str(home))}
        )
        result = promote_to_live(ctx)
        for req in getattr(result, "run_requests", []) or []:
            _run(defs.resolve_job_def("deploy_job"), instance, req.run_config)
    console.print(f"approved [bold]{family}[/bold] ({note}); promote_to_live deployed it")
    return family


def run_live_sim(settings: Settings, console: Console) -> dict:
    """The live runner in sim over the last sessions of the lake, then one session of a
    minute-bar deployment (:func:`run_intraday_sim`); returns the daily run's status."""
    home = settings.home.resolve()
    sessions = storage.existing_sessions(paths.lake_dir(home), "stock_bars_1d")
    first = dt.date.fromisoformat(sessions[-LIVE_SESSIONS])
    start = dt.datetime(first.year, first.month, first.day, 16, 30, tzinfo=cal.NEW_YORK)
    # the last decision: at the first open after the lake's last session
    last = cal.next_session(dt.date.fromisoformat(sessions[-1]))
    until = dt.datetime(last.year, last.month, last.day, 9, 31, tzinfo=cal.NEW_YORK)
    cmd = [
        sys.executable,
        "-m",
        "live.cli",
        "run",
        "--broker",
        "sim",
        "--home",
        str(home),
        "--cycle-seconds",
        "86400",
        "--sim-start",
        start.isoformat(),
        "--until",
        until.isoformat(),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise ConfigError(f"live runner failed: {out.stderr.strip()[-800:]}")
    status = subprocess.run(
        [sys.executable, "-m", "live.cli", "status", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    run_intraday_sim(settings, console)  # the intraday path on the same lake, its own journal
    return json.loads(status.stdout)


def print_live(status: dict, settings: Settings, console: Console) -> None:
    """Orders, fills, positions and mark-to-market P&L of the sim run."""
    from rich.table import Table

    from research import lakehouse

    con = lakehouse.connect(settings.home)
    closes = dict(
        con.execute(
            "SELECT symbol, arg_max(close, session) FROM stock_bars_1d GROUP BY symbol"
        ).fetchall()
    )
    table = Table(
        title=f"live runner (sim): orders {status.get('orders_by_status', {})}, "
        f"fills {status.get('fills', 0)}, state {status.get('state')}"
    )
    for col in ("deployment", "symbol", "qty", "avg price", "mark", "unrealized P&L"):
        table.add_column(col)
    total = 0.0
    for p in status.get("positions", []):
        mark = closes.get(p["symbol"], float("nan"))
        pnl = (mark - p["avg_price"]) * p["qty"]
        total += pnl
        table.add_row(
            p["deployment_id"],
            p["symbol"],
            f"{p['qty']:g}",
            f"{p['avg_price']:.2f}",
            f"{mark:.2f}",
            f"{pnl:,.2f}",
        )
    console.print(table)
    console.print(
        f"unrealized P&L at the last close: {total:,.2f}; journal: "
        f"{paths.journal_path(settings.home.resolve())} "
        "(.venv/bin/alpaca-improved live status)"
    )


def _materialize(settings: Settings, key: str) -> dg.ExecuteInProcessResult:
    from alpaca_improved_pipelines.definitions import defs as load_defs
    from alpaca_improved_pipelines.runner import dagster_instance

    with dagster_instance(settings) as instance:
        job = (
            load_defs()
            .resolve_implicit_global_asset_job_def()
            .get_subset(asset_selection={dg.AssetKey(key)})
        )
        res = job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False)
    if not res.success:
        raise ConfigError(f"run {res.run_id} of {key} failed; open it in the Dagster UI")
    return res


def materialize_live_results(settings: Settings, console: Console) -> None:
    """live_results: the runner's orders, fills, positions and daily P&L back into the lake,
    with the live-vs-backtest drift report (fill rate, slippage, tracking error)."""
    res = _materialize(settings, "live_results")
    from rich.table import Table

    meta = res.asset_materializations_for_node("live_results")[0].metadata
    table = Table(title="live vs backtest drift (live_results)")
    cols = ("deployment_id", "orders", "fill_rate", "slippage_bps_mean", "tracking_error",
            "live_return", "backtest_return", "te_sessions")  # fmt: skip
    for col in cols:
        table.add_column(col)
    rows: list[dict] = meta["drift_rows"].value  # type: ignore[assignment]
    for row in rows:
        table.add_row(*(_fmt(row.get(c)) for c in cols))
    console.print(
        "live results written to the lake (views live_orders, live_fills, live_positions, live_pnl)"
    )
    console.print(table)


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def materialize_live_replay(settings: Settings, console: Console) -> None:
    """live_replay: the last 20 sessions through the runner in sim against the backtest."""
    res = _materialize(settings, "live_replay")
    meta = res.asset_materializations_for_node("live_replay")[0].metadata
    (check,) = res.get_asset_check_evaluations()
    verdict = "[green]matches[/green]" if check.passed else "[red]DIVERGES from[/red]"
    console.print(
        f"replay of {meta['window'].value} through the live runner (sim) {verdict} the backtest: "
        f"{meta['orders'].value} (view live_replay)"
    )


def run_intraday_sim(settings: Settings, console: Console) -> None:
    """One session of a ``vwap_reversion`` (minute bars) deployment through the live runner on
    the simulated broker, the lake's minute bars replayed through the stream feed; prints its
    decisions and fills, the bar-to-decision latency, and where to look."""
    from contracts.limits import derived_risk_limits
    from contracts.manifest import DeploymentManifest, SignalCosts, write_manifest

    home = settings.home.resolve()
    sessions = storage.existing_sessions(paths.lake_dir(home), "stock_bars_1m")
    if not sessions:
        console.print("intraday demo skipped: the lake has no stock_bars_1m partitions")
        return
    day = dt.date.fromisoformat(sessions[-1])
    demo = home / INTRADAY_DIR
    shutil.rmtree(paths.live_dir(demo), ignore_errors=True)  # a fresh journal every demo
    demo.mkdir(parents=True, exist_ok=True)
    if not paths.lake_dir(demo).exists():
        paths.lake_dir(demo).symlink_to(paths.lake_dir(home), target_is_directory=True)
    symbols = [s for s in INTRADAY_SYMBOLS if s in settings.symbols] or list(settings.symbols[:2])
    manifest = DeploymentManifest(
        manifest_id="demo-vwap-reversion", strategy="vwap_reversion", interface_version=1,
        params={"symbols": symbols, "band": 1.5, "warmup": 15, "flat_before": 15,
                "allocation": 0.8},
        capital=100_000.0, risk_limits=derived_risk_limits(100_000.0, 50.0),
        costs=SignalCosts(fees=0.0005, slippage=0.0005),
    )  # fmt: skip
    write_manifest(paths.deployments_dir(demo) / "vwap-demo.json", manifest)
    opens, closes = (t.astimezone(cal.NEW_YORK) for t in _session_hours(day))
    cmd = [sys.executable, "-m", "live.cli", "run", "--broker", "sim", "--market-data", "stream",
           "--home", str(demo), "--cycle-seconds", "300", "--sim-start", opens.isoformat(),
           "--until", (closes + dt.timedelta(minutes=1)).isoformat()]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise ConfigError(f"intraday live runner failed: {out.stderr.strip()[-800:]}")
    _print_intraday(demo, day, json.loads(_status(demo)), console)


def _session_hours(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    from contracts.calendar import session_open_close

    opens, closes = session_open_close(day)
    return opens.to_pydatetime(), closes.to_pydatetime()


def _status(home: Path) -> str:
    cmd = [sys.executable, "-m", "live.cli", "status", "--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def _print_intraday(home: Path, day: dt.date, status: dict, console: Console) -> None:
    from rich.table import Table

    from alpaca_improved_pipelines.defs.monitoring.journal_io import read_table

    orders = read_table(home, "orders").join(
        read_table(home, "intents").select("id", "decision_ts", "intent_json"),
        left_on="intent_id", right_on="id",
    )  # fmt: skip
    table = Table(title=f"intraday live runner (sim replay of {day} minute bars): vwap_reversion")
    for col in ("decided (New York)", "symbol", "side", "qty", "fill", "status", "why"):
        table.add_column(col)
    for row in orders.sort("decision_ts").iter_rows(named=True):
        intent = json.loads(row["intent_json"])
        leg = intent["legs"][0]
        decided = dt.datetime.fromisoformat(row["decision_ts"]).astimezone(cal.NEW_YORK)
        price = row["filled_avg_price"]
        table.add_row(
            f"{decided:%H:%M}", leg["symbol"], leg["side"], f"{row['qty']:g}",
            f"{price:.2f}" if price is not None else "-", row["status"], intent.get("reason", ""),
        )  # fmt: skip
    console.print(table)
    market = status.get("market_data") or {}
    latency = market.get("latency_ms") or {}
    console.print(
        f"{market.get('minute_decisions', 0)} minute decisions, {status.get('fills', 0)} fills; "
        f"bar close -> decision p50 {latency.get('p50', float('nan')):.1f} ms, "
        f"p99 {latency.get('p99', float('nan')):.1f} ms. Look: .venv/bin/alpaca-improved live "
        f"status --home {home} (journal {paths.journal_path(home)}); live trading on minute bars: "
        "live run --market-data stream"
    )


def run_signals_demo(settings: Settings, console: Console) -> None:
    """Signals of the sim run to demo subscribers of two tiers (``signals demo``: the local
    Telegram and Discord fakes, the local payment provider). Its own process: the pipelines
    never import the signals service."""
    console.print("[bold]signals -> subscribers (local Telegram and Discord fakes)")
    cmd = [sys.executable, "-m", "signals.cli", "demo", "--home", str(settings.home.resolve())]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise ConfigError(f"signals demo failed: {out.stderr.strip()[-800:]}")
    console.print(out.stdout.rstrip(), markup=False, highlight=False)
