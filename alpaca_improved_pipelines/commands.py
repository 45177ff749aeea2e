"""What the CLI commands do, kept apart from argument parsing so tests can call them."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.runner import (
    check_range_in_partitions,
    dagster_instance,
    run_range,
)
from alpaca_improved_pipelines.settings import Settings, load_settings, parse_symbols

console = Console(width=None if sys.stdout.isatty() else 140)
DEMO_SESSIONS = 252  # one year: enough history for the slow windows and walk-forward folds
DEMO_CHAIN_SESSIONS = 5  # option chains and vol surfaces for the last sessions of the demo


def _range(settings: Settings, start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    first = cal.parse_date(start, "--start") if start else settings.start
    if end:
        last = cal.parse_date(end, "--end")
    else:
        ahead = cal.sessions_between(first, min(first + dt.timedelta(days=400), cal.CALENDAR_END))
        last = ahead[min(DEMO_SESSIONS, len(ahead)) - 1]
    if first > last:
        raise ConfigError(
            f"--start {first.isoformat()} is after --end {last.isoformat()}; swap them"
        )
    cal.require_session(first, "--start")
    cal.require_session(last, "--end")
    check_range_in_partitions(first, settings)
    return first, last


def run_backfill(
    start: str,
    end: str,
    symbols: str | None,
    batch_size: int,
    job: str,
    settings: Settings | None = None,
) -> list:
    """Run ``job`` for [start, end] with a progress bar; raise ConfigError on bad input."""
    settings = settings or load_settings()
    first, last = _range(settings, start, end)
    run_config = None
    if symbols:
        subset = list(parse_symbols(symbols, "--symbols"))
        outside = [s for s in subset if s not in settings.symbols]
        if outside:
            raise ConfigError(
                f"--symbols {outside} are not in the universe {list(settings.symbols)};"
                " add them to ALPACA_IMPROVED_SYMBOLS"
            )
        cfg = {"config": {"symbols": subset}}
        run_config = {"ops": {"stock_bars_1m": cfg, "stock_bars_1d": cfg}}
    from alpaca_improved_pipelines.definitions import defs
    from alpaca_improved_pipelines.defs.resources import build_source

    build_source(settings).validate_symbols(settings.symbols)  # fail before any run starts
    n = len(cal.sessions_between(first, last))
    with (
        dagster_instance(settings) as instance,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task(f"{job} {first}..{last}", total=n)

        def on_batch(res, size: int) -> None:
            progress.advance(task, size)
            if not res.success:
                progress.console.print(f"[red]run {res.run_id} failed for {res.first}..{res.last}")

        results = run_range(defs(), job, instance, first, last, batch_size, run_config, on_batch)
    if not all(r.success for r in results):
        raise ConfigError(
            f"backfill stopped at a failed run; open the Dagster UI (make ui) and "
            f"look at run {results[-1].run_id}"
        )
    console.print(f"[green]materialized {n} sessions in {len(results)} run(s)")
    return results


def run_sql(query: str, fmt: str, limit: int, home: Path | None = None) -> None:
    """Print the result of ``query`` over the lake views."""
    import duckdb

    from research import lakehouse

    con = lakehouse.connect(home)
    try:
        rel = con.sql(query)
    except duckdb.Error as exc:
        views = ", ".join(lakehouse.available_views(home)) or "none (materialize data first)"
        raise ConfigError(f"query failed: {exc}. Views available: {views}") from None
    if rel is None:
        return
    frame = rel.pl()
    if fmt == "csv":
        print(frame.write_csv(), end="")
    elif fmt == "json":
        print(frame.write_json())
    else:
        import polars as pl

        with pl.Config(tbl_rows=limit, tbl_cols=-1, tbl_width_chars=200):
            print(frame.head(limit))


def run_demo(start: str | None, end: str | None) -> None:
    """The demo: market data and features for about six months, then where to look."""
    settings = load_settings()
    first, last = _range(settings, start, end)
    console.rule("[bold]alpaca-improved demo")
    console.print(
        f"data root: {settings.home.resolve()}  source: {settings.source}  "
        f"symbols: {', '.join(settings.symbols)}"
    )
    run_backfill(first.isoformat(), last.isoformat(), None, 60, "market_data_job", settings)
    chain_start = cal.sessions_between(first, last)[-DEMO_CHAIN_SESSIONS]
    run_backfill(chain_start.isoformat(), last.isoformat(), None, 60, "options_job", settings)
    run_research(settings)
    from alpaca_improved_pipelines.demo_live import (
        approve_and_promote,
        materialize_live_replay,
        materialize_live_results,
        print_live,
        run_live_sim,
    )
    from alpaca_improved_pipelines.demo_report import print_report

    console.print("[bold]promotion -> live runner (sim)")
    approve_and_promote(settings, console)
    status = run_live_sim(settings, console)
    materialize_live_results(settings, console)
    materialize_live_replay(settings, console)
    print_report(settings, first, last, console)
    print_live(status, settings, console)


def run_research(settings: Settings) -> None:
    """Sweeps for two families, walk-forward and the leaderboard, through the instance."""
    from alpaca_improved_pipelines.definitions import defs

    console.print("[bold]research: sweeps (ma_crossover, rsi_reversion) -> MLflow")
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with dagster_instance(settings) as instance:
        res = (
            defs()
            .resolve_job_def("research_job")
            .execute_in_process(instance=instance, run_config=quiet, raise_on_error=False)
        )
    if not res.success:
        raise ConfigError(f"research run {res.run_id} failed; open it in the Dagster UI (make ui)")
