"""What the CLI commands do, kept apart from argument parsing so tests can call them."""

from __future__ import annotations

import datetime as dt
import errno
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import AlpacaImprovedError, ConfigError
from alpaca_improved_pipelines.lake import lineage, storage
from alpaca_improved_pipelines.runner import (
    check_range_in_partitions,
    dagster_instance,
    process_tags,
    run_range,
)
from alpaca_improved_pipelines.settings import (
    Settings,
    check_home,
    load_settings,
    parse_symbols,
    require_not_future,
    today,
)

console = Console(width=None if sys.stdout.isatty() else 140)
DEMO_SESSIONS = 252  # one year: enough history for the slow windows and walk-forward folds
DEMO_CHAIN_SESSIONS = 5  # option chains and vol surfaces for the last sessions of the demo
BAR_TABLES = ("stock_bars_1m", "stock_bars_1d", "stock_bars_5m", "stock_bars_1h")
# The partitioned jobs a backfill runs, and the lake tables each one writes.
JOB_TABLES = {
    "market_data_job": (*BAR_TABLES, "indicators_1d"),
    "options_job": ("option_chains", "vol_surface"),
}
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
LOW_SPACE = 1 << 20  # below 1 MiB free, a failed write is taken for a full disk


def _range(
    settings: Settings,
    start: str | None,
    end: str | None,
    job: str = "market_data_job",
    strict_history: bool = False,
) -> tuple[dt.date, dt.date]:
    first = cal.parse_date(start, "--start") if start else settings.start
    require_not_future(first, "--start")
    if end:
        last = require_not_future(cal.parse_date(end, "--end"), "--end")
    else:
        horizon = min(first + dt.timedelta(days=400), cal.CALENDAR_END, today())
        ahead = cal.sessions_between(first, horizon) if first <= horizon else []
        if not ahead:
            raise ConfigError(f"no NYSE session from --start {first.isoformat()} up to today")
        last = ahead[min(DEMO_SESSIONS, len(ahead)) - 1]
    if first > last:
        raise ConfigError(
            f"--start {first.isoformat()} is after --end {last.isoformat()}; swap them"
        )
    cal.require_session(first, "--start")
    cal.require_session(last, "--end")
    check_range_in_partitions(first, settings)
    check_history(settings, first, job, strict_history)
    return first, last


def check_history(settings: Settings, first: dt.date, job: str, strict: bool) -> None:
    """Refuse up front a range whose indicators lack their daily history in the lake.

    Indicators of ``first`` read ``stock_bars_1d`` back to ``ALPACA_IMPROVED_START``. ``strict``
    (the demo) refuses when any of it is missing; a backfill only when all of it is (other
    backfills may be writing the rest concurrently).
    """
    if job != "market_data_job":
        return
    from alpaca_improved_pipelines.defs.features.indicators import history_sessions

    needed = [s for s in history_sessions(first, settings.start) if s < first]
    missing = [s for s in needed if not storage.has(settings.lake, "stock_bars_1d", s)]
    if not missing or (not strict and len(missing) < len(needed)):
        return
    raise ConfigError(
        f"--start {first.isoformat()} is after ALPACA_IMPROVED_START={settings.start.isoformat()}"
        f" and the lake has no stock_bars_1d for {len(missing)} of the sessions "
        f"{missing[0].isoformat()}..{missing[-1].isoformat()} the indicators of "
        f"{first.isoformat()} are computed from; start at {missing[0].isoformat()}, or set "
        f"ALPACA_IMPROVED_START={first.isoformat()}"
    )


def check_job(name: str) -> None:
    """Refuse a job a backfill cannot run, naming those it can."""
    if name not in JOB_TABLES:
        raise ConfigError(
            f"--job {name!r} is not a backfill job; use one of {', '.join(JOB_TABLES)}"
        )


def preflight_source(source: Any, symbols: tuple[str, ...], session: dt.date) -> None:
    """Check the symbols and the vendor keys before a run starts, with one small request.

    A missing or rejected key then fails here in one line, not inside a Dagster run.
    """
    source.validate_symbols(symbols)
    halves = (getattr(source, "primary", None), getattr(source, "secondary", None))
    for part in [p for p in halves if p is not None] or [source]:  # a fallback: check both
        if part.name == "synthetic":
            continue
        try:
            part.stock_bars((symbols[0],), session, "1Day")
        except AlpacaImprovedError as exc:
            raise ConfigError(
                f"the {part.name} source failed its check before the run: {_one_line(exc)}"
            ) from None


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "description", None) or exc).strip()
    return " ".join(text.split())


def planned_lineage(
    job: str,
    settings: Settings,
    source: Any,
    sessions: list[dt.date],
    subset: tuple[str, ...] | None,
) -> dict[str, dict[dt.date, dict[str, Any]]]:
    """The lineage each partition of the run would get (what the assets will write)."""
    lake, universe, src = settings.lake, settings.symbols, lineage.source_id(source)
    if job == "options_job":
        from alpaca_improved_pipelines.defs.options.config import ChainConfig, resolve_underlyings

        under = resolve_underlyings(ChainConfig(), universe)
        return {
            "option_chains": {s: lineage.chains(under, src) for s in sessions},
            "vol_surface": {s: lineage.surface(under) for s in sessions},
        }
    from alpaca_improved_pipelines.defs.features.indicators import history_sessions

    out: dict[str, dict[dt.date, dict[str, Any]]] = {}
    for table in ("stock_bars_1m", "stock_bars_1d"):
        out[table] = {}
        for s in sessions:
            old = lineage.stored(lake, table, s) if subset else None
            keep = tuple(old.get("symbols", ())) if old else ()
            out[table][s] = lineage.bars(tuple(sorted({*keep, *(subset or universe)})), src)
    out["stock_bars_5m"] = out["stock_bars_1h"] = out["stock_bars_1m"]
    out["indicators_1d"] = {
        s: lineage.indicators(
            [x for x in out["stock_bars_1d"][s]["symbols"] if x in universe],
            history_sessions(s, settings.start),
        )
        for s in sessions
    }
    return out


def check_lineage(
    job: str,
    settings: Settings,
    source: Any,
    sessions: list[dt.date],
    subset: tuple[str, ...] | None,
) -> None:
    """Refuse a run that would change existing partitions (universe, source, history)."""
    found: list[lineage.Conflict] = []
    for table, planned in planned_lineage(job, settings, source, sessions, subset).items():
        found += lineage.conflicts(settings.lake, table, planned)
    if found:
        raise ConfigError(lineage.refusal(found, "rerun with --replace"))


def dependents(job: str, settings: Settings, last: dt.date) -> tuple[str, list[list[dt.date]]]:
    """Existing partitions after ``last`` computed from the replaced ones, as contiguous runs.

    Indicators read LOOKBACK sessions of daily bars; IV rank reads a window of earlier surfaces.
    """
    if job == "market_data_job":
        from alpaca_improved_pipelines.defs.features.indicators import LOOKBACK

        table, reach = "indicators_1d", LOOKBACK - 1
    else:
        from alpaca_improved_pipelines.defs.options.config import SurfaceConfig

        table, reach = "vol_surface", SurfaceConfig().rank_window
    groups: list[list[dt.date]] = []
    horizon = min(today(), cal.CALENDAR_END)
    if last >= horizon:
        return table, groups
    after = cal.sessions_between(cal.next_session(last), horizon)[:reach]
    for s in after:
        if not storage.has(settings.lake, table, s):
            if groups and groups[-1]:
                groups.append([])
            continue
        if not groups:
            groups.append([])
        groups[-1].append(s)
    return table, [g for g in groups if g]


def failure_cause(instance: Any, run_id: str) -> str:
    """One line: the step that failed a run and the innermost reason it gave."""
    import dagster as dg

    kinds = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    for record in instance.all_logs(run_id, of_type=kinds):
        event = record.dagster_event
        if event is None:
            continue
        data = event.event_specific_data
        user = getattr(data, "user_failure_data", None)
        err = getattr(data, "error", None)
        if user is not None and user.description:
            reason = user.description
        elif err is not None:
            while err.cause is not None:
                err = err.cause
            reason = err.message
        else:
            continue
        where = f" at {event.step_key}" if event.step_key else ""
        return f"{where}: {' '.join(str(reason).split())}"
    return ""


def _free_bytes(path: Path) -> int:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return LOW_SPACE


def environment_error(exc: BaseException, settings: Settings | None = None) -> ConfigError | None:
    """A one-line ConfigError for a full disk, a read-only or unwritable root; else None."""
    if settings is None:
        try:
            settings = load_settings()
        except Exception:  # noqa: BLE001 - only for naming the root in the message
            settings = None
    home = str(settings.home) if settings else "the data root"
    text = " ".join(str(exc).split())
    for noise in (" [SQL:", " (Background on this error"):  # SQLAlchemy's tail
        text = text.split(noise)[0]
    code = getattr(exc, "errno", None)
    full = code in DISK_FULL or "disk is full" in text or "No space left" in text
    if not full and settings is not None and ("disk I/O error" in text or code is not None):
        full = _free_bytes(settings.home) < LOW_SPACE  # SQLite reports ENOSPC as an I/O error
    if full:
        return ConfigError(
            f"the disk holding {home} is full ({text}); free space and rerun the same range "
            "(partitions are written atomically: none is half-written)"
        )
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly database" in text:
        return ConfigError(
            f"cannot write under {home} ({text}); make the data root writable, or point "
            "ALPACA_IMPROVED_HOME at a writable copy"
        )
    if isinstance(exc, sqlite3.Error) or type(exc).__name__ == "OperationalError":
        return ConfigError(f"the Dagster run storage under {home} failed: {text}")
    return None


def run_backfill(
    start: str,
    end: str,
    symbols: str | None,
    batch_size: int,
    job: str,
    settings: Settings | None = None,
    replace: bool = False,
) -> list:
    """Run ``job`` for [start, end] with a progress bar; raise ConfigError on bad input.

    Everything that can be checked is checked before a run starts: the data root, the job,
    the range (no session after today), the symbols, the source's keys, and that no existing
    partition would change (``replace`` replaces them and every partition computed from them).
    """
    settings = settings or load_settings()
    check_home(settings, write=True)
    check_job(job)
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size} must be at least 1")
    first, last = _range(settings, start, end, job)
    run_config = None
    subset: tuple[str, ...] | None = None
    if symbols:
        subset = parse_symbols(symbols, "--symbols")
        outside = [s for s in subset if s not in settings.symbols]
        if outside:
            raise ConfigError(
                f"--symbols {outside} are not in the universe {list(settings.symbols)};"
                " add them to ALPACA_IMPROVED_SYMBOLS"
            )
        cfg = {"config": {"symbols": list(subset)}}
        run_config = {"ops": {"stock_bars_1m": cfg, "stock_bars_1d": cfg}}
    from alpaca_improved_pipelines.definitions import defs
    from alpaca_improved_pipelines.defs.resources import build_source

    sessions = cal.sessions_between(first, last)
    source = build_source(settings)
    preflight_source(source, settings.symbols, first)  # fail before any run starts
    if not replace:
        check_lineage(job, settings, source, sessions, subset)
    tags = {lineage.REPLACE_TAG: "true"} if replace else None
    n = len(sessions)
    loaded = defs()
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

        results = run_range(
            loaded, job, instance, first, last, batch_size, run_config, on_batch, tags
        )
        if all(r.success for r in results) and replace:
            results += _replace_dependents(loaded, job, settings, instance, last, batch_size)
        if not all(r.success for r in results):
            failed = results[-1]
            cause = failure_cause(instance, failed.run_id)
            if "No space left on device" in cause or "disk is full" in cause:
                full = environment_error(OSError(errno.ENOSPC, cause.lstrip(": ")), settings)
                raise full or ConfigError(cause)
            raise ConfigError(
                f"run {failed.run_id} failed{cause} "
                f"(sessions {failed.first}..{failed.last}; every partition written is complete; "
                "details in the Dagster UI: make ui)"
            )
    console.print(f"[green]materialized {n} sessions in {len(results)} run(s)")
    return results


def _replace_dependents(
    loaded: Any, job: str, settings: Settings, instance: Any, last: dt.date, batch_size: int
) -> list:
    """After a replacing run, recompute the existing partitions computed from what it replaced."""
    import dagster as dg

    table, groups = dependents(job, settings, last)
    if not groups:
        return []
    subset_job = loaded.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(table)}
    )
    console.print(f"replacing {sum(map(len, groups))} dependent {table} partition(s) after {last}")
    out: list = []
    for group in groups:
        out += run_range(
            loaded,
            job,
            instance,
            group[0],
            group[-1],
            batch_size,
            extra_tags={lineage.REPLACE_TAG: "true"},
            job_def=subset_job,
        )
        if not out[-1].success:
            break
    return out


def run_demo(start: str | None, end: str | None) -> None:
    """The demo: market data and features for about six months, then where to look."""
    settings = load_settings()
    check_home(settings, write=True)
    first, last = _range(settings, start, end, strict_history=True)
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
        run_signals_demo,
    )
    from alpaca_improved_pipelines.demo_report import print_report

    console.print("[bold]promotion -> live runner (sim)")
    approve_and_promote(settings, console)
    status = run_live_sim(settings, console)
    materialize_live_results(settings, console)
    materialize_live_replay(settings, console)
    print_report(settings, first, last, console)
    print_live(status, settings, console)
    run_signals_demo(settings, console)


def run_research(settings: Settings) -> None:
    """Sweeps for every registered signal family, walk-forward and the leaderboard."""
    from alpaca_improved_pipelines.backtesting.families import families
    from alpaca_improved_pipelines.definitions import defs

    console.print(f"[bold]research: sweeps ({', '.join(families())}) -> MLflow")
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with dagster_instance(settings) as instance:
        res = (
            defs()
            .resolve_job_def("research_job")
            .execute_in_process(
                instance=instance, run_config=quiet, raise_on_error=False, tags=process_tags()
            )
        )
    if not res.success:
        raise ConfigError(f"research run {res.run_id} failed; open it in the Dagster UI (make ui)")
