"""The stress run behind the ``stress_scenarios`` asset: grids and historical windows per book.

For each candidate book (:mod:`alpaca_improved_pipelines.defs.risk.books`) it computes the
spot x vol grid with :func:`strategies.stress.stress_grid` and replays the named historical
windows (the proxy's worst crash and largest ATM-vol spike in the lake, plus any the user names)
with :func:`strategies.stress.replay_window`; writes both to the lake (``stress_scenarios``,
``stress_history``, partitioned by the valuation session), logs the heatmaps (PNG and HTML) and
tables to one MLflow run, and returns the Markdown (inline PNG) the asset shows.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from alpaca_improved_pipelines.backtesting import plots
from alpaca_improved_pipelines.defs.risk import plots as risk_plots
from alpaca_improved_pipelines.defs.risk.books import (
    BookPositions,
    Market,
    candidate_books,
    market_at,
    stress_book,
)
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.tracking import repro
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from contracts import paths
from strategies.stress import StressBook, StressWindow, find_windows, replay_window, stress_grid

HISTORY_SESSIONS = 756  # about three years of closes and surfaces to find windows in


def _history(lake: Path, last: dt.date) -> tuple[list[dt.date], pl.DataFrame, pl.DataFrame]:
    """Sessions up to ``last`` with bars, their closes, and the surfaces' ``atm_iv_30d``."""
    keys = [k for k in storage.existing_sessions(lake, "stock_bars_1d") if k <= last.isoformat()]
    keys = keys[-HISTORY_SESSIONS:]
    bars = storage.read_partitions(lake, "stock_bars_1d", keys, BAR_SCHEMA)
    closes = (
        bars.select("session", "symbol", "close").pivot("symbol", index="session").sort("session")
    )
    surf_keys = [k for k in storage.existing_sessions(lake, "vol_surface") if k in set(keys)]
    frames = [
        storage.read_file(
            lake,
            storage.partition_path(lake, "vol_surface", k),
            ["underlying", "session", "atm_iv_30d"],
        )
        for k in surf_keys
    ]
    ivs = pl.concat(frames) if frames else pl.DataFrame(
        schema={"underlying": pl.String, "session": pl.Date, "atm_iv_30d": pl.Float64}
    )  # fmt: skip
    ivs = ivs.unique(["underlying", "session"]).pivot("underlying", index="session")
    ivs = closes.select("session").join(ivs, on="session", how="left")
    return closes["session"].to_list(), closes, ivs


def _windows(
    sessions: list[dt.date], closes: pl.DataFrame, ivs: pl.DataFrame, proxy: str, length: int,
    named: list[dict[str, str]],
) -> list[StressWindow]:  # fmt: skip
    out = [
        StressWindow(w["name"], dt.date.fromisoformat(w["start"]), dt.date.fromisoformat(w["end"]))
        for w in named
    ]
    if proxy in closes.columns and len(sessions) > length:
        iv = ivs[proxy].to_numpy() if proxy in ivs.columns else None
        out += find_windows(sessions, closes[proxy].to_numpy(), iv, length)
    return out


def _replays(
    book: StressBook, window: StressWindow, closes: pl.DataFrame, ivs: pl.DataFrame, proxy: str
) -> Any:
    mask = (closes["session"] >= window.start) & (closes["session"] <= window.end)
    part, iv_part = closes.filter(mask), ivs.filter(mask)
    if part.height < 2:
        raise ConfigError(
            f"stress window {window.name!r} ({window.start}..{window.end}) has fewer than two "
            "sessions of stock_bars_1d in the lake; choose dates the lake holds"
        )
    cols = [c for c in part.columns if c != "session"]
    return replay_window(
        book,
        part["session"].to_list(),
        {c: part[c].to_numpy() for c in cols if part[c].null_count() == 0},
        {c: iv_part[c].cast(pl.Float64).to_numpy() for c in iv_part.columns if c != "session"},
        proxy=proxy,
        name=window.name,
    )


def _grid_rows(b: BookPositions, grid: Any, session: dt.date) -> pl.DataFrame:
    spots, vols = np.meshgrid(grid.spot_shocks, grid.vol_points, indexing="ij")
    return pl.DataFrame(
        {
            "book": b.name,
            "source": b.source,
            "spot_shock": spots.ravel(),
            "vol_points": vols.ravel(),
            "skew_tilt": grid.skew_tilt,
            "days": grid.days,
            "pnl": grid.pnl.ravel(),
            "session": session,
        }
    )


def _history_rows(b: BookPositions, replay: Any, session: dt.date) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "book": b.name,
            "window": replay.name,
            "day": list(replay.sessions),
            "cumulative": replay.cumulative,
            "daily": replay.daily,
            "session": session,
        }
    )


def run_stress(
    home: Path, tracker: Tracker, config: Any, run_id: str, asset_key: str
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], Market]:
    """Stress every candidate book; returns grid rows, history rows, the summary and market."""
    lake = paths.lake_dir(home)
    books = candidate_books(home, tracker)
    symbols = {s for b in books for s in b.positions["symbol"].to_list()}
    market = market_at(lake, symbols)
    sessions, closes, ivs = _history(lake, market.session)
    named = json.loads(config.windows_json)
    windows = _windows(sessions, closes, ivs, config.proxy, config.window_sessions, named)
    grids: list[pl.DataFrame] = []
    hist: list[pl.DataFrame] = []
    summary: dict[str, Any] = {"books": [], "markdown": []}
    for b in books:
        book, left_out = stress_book(b.positions, market)
        grid = stress_grid(
            book, config.spot_shocks, config.vol_points, skew_tilt=config.skew_tilt,
            days=config.days,
        )  # fmt: skip
        grids.append(_grid_rows(b, grid, market.session))
        worst, at_spot, at_vol = grid.worst
        row: dict[str, Any] = {
            "book": b.name, "source": b.source, "legs": book.n_options + book.stock_qty.size,
            "worst_pnl": round(worst, 2), "at_spot": at_spot, "at_vol_points": at_vol,
            "left_out": ", ".join(left_out),
        }  # fmt: skip
        book_hist = []
        for w in windows:
            replay = _replays(book, w, closes, ivs, config.proxy)
            book_hist.append(_history_rows(b, replay, market.session))
            day, pnl = replay.worst_day
            row[f"{w.name}_worst_day"] = f"{day} {pnl:,.0f}"
        hist += book_hist
        summary["books"].append(row)
        title = f"{b.name} ({b.source})"
        summary["markdown"].append(risk_plots.markdown(risk_plots.heatmap(grid, f"{title} P&L"),
                                                       title))  # fmt: skip
        if book_hist:
            fig = risk_plots.window_paths(pl.concat(book_hist), f"{title}: historical windows")
            summary["markdown"].append(risk_plots.markdown(fig, f"{title} windows"))
    grid_frame = pl.concat(grids)
    hist_frame = pl.concat(hist) if hist else pl.DataFrame()
    summary["windows"] = [(w.name, str(w.start), str(w.end)) for w in windows]
    summary["mlflow_run_id"] = _log(tracker, grid_frame, hist_frame, summary, market,
                                    run_id, asset_key)  # fmt: skip
    return grid_frame, hist_frame, summary, market


def _by_book(frame: pl.DataFrame) -> list[tuple[tuple[Any, ...], pl.DataFrame]]:
    if frame.is_empty():
        return []
    return list(frame.partition_by("book", as_dict=True, maintain_order=True).items())


def _log(
    tracker: Tracker, grid: pl.DataFrame, hist: pl.DataFrame, summary: dict[str, Any],
    market: Market, run_id: str, asset_key: str,
) -> str:  # fmt: skip
    versions = {f"option_chains/session={market.session}": market.version}
    tags = RunTags(run_id, asset_key, market.session.isoformat(), versions)
    mlflow_run = tracker.start_run("stress", f"stress {market.session}", "stress", tags)
    worst = min(r["worst_pnl"] for r in summary["books"])
    tracker.log(mlflow_run, params={"session": market.session.isoformat(),
                "books": len(summary["books"]), "git_sha": repro.git_sha()},
                metrics={"worst_grid_pnl": worst})  # fmt: skip
    tracker.log_frame(mlflow_run, grid, "stress_grid.parquet")
    if hist.height:
        tracker.log_frame(mlflow_run, hist, "stress_history.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        for (book,), part in _by_book(grid):
            spots = np.unique(part["spot_shock"].to_numpy())
            vols = np.unique(part["vol_points"].to_numpy())
            z = part.sort("spot_shock", "vol_points")["pnl"].to_numpy()
            z = z.reshape(spots.size, vols.size)
            for path in plots.heatmap(z, [f"{v:+g}" for v in vols], [f"{s:+.0%}" for s in spots],
                                      "vol shock (points)", "spot shock", f"{book} P&L",
                                      Path(tmp) / f"stress_{book}"):  # fmt: skip
                tracker.log_file(mlflow_run, path, "plots")
        for (book,), part in _by_book(hist):
            fig = risk_plots.window_paths(part, f"{book}: historical windows")
            png = risk_plots.save_png(fig, Path(tmp) / f"windows_{book}.png")
            tracker.log_file(mlflow_run, png, "plots")
    tracker.finish(mlflow_run)
    return mlflow_run
