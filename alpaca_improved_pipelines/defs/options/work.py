"""The per-run work of the options assets: fetch, enrich and write chains; fit and write surfaces.

Sessions of a run are processed in ascending order, so a range run builds each session's IV
rank history from the sessions before it (earlier partitions on disk, then the run's own).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any

import polars as pl

from alpaca_improved_pipelines.defs.options.chains import OPTION_CHAIN_SCHEMA, enrich
from alpaca_improved_pipelines.defs.options.config import (
    ChainConfig,
    SurfaceConfig,
    curve_rates,
    dividend_yield,
    resolve_underlyings,
)
from alpaca_improved_pipelines.defs.options.surface import (
    SURFACE_SCHEMA,
    fit_underlying,
    iv_rank_percentile,
    rank_history,
    surface_frame,
    window_start,
)
from alpaca_improved_pipelines.errors import SourceError
from alpaca_improved_pipelines.lake import lineage, storage
from alpaca_improved_pipelines.lake.storage import WrittenPartition
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.sources import MarketDataSource
from alpaca_improved_pipelines.resources.universe import UniverseResource

HISTORY_COLUMNS = ["underlying", "session", "atm_iv_30d"]
Written = list[tuple[dt.date, WrittenPartition]]
# Called with a table and the lineage each session's partition would get, before any write.
Guard = Callable[[str, dict[dt.date, dict[str, Any]]], None]


def fetch_chains(
    source: MarketDataSource, underlyings: tuple[str, ...], session: dt.date
) -> pl.DataFrame:
    """Raw chains of every underlying on ``session``; SourceError naming any that is empty."""
    frames = [source.option_chain(u, session) for u in underlyings]
    missing = [u for u, f in zip(underlyings, frames, strict=True) if f.is_empty()]
    if missing:
        raise SourceError(
            f"{source.name} returned no option chain for {missing} on {session.isoformat()}; "
            "refusing to write a partition with less data (check the underlyings, the "
            "source's options coverage for that date, or restrict the run's underlyings)"
        )
    return pl.concat(frames, how="vertical")


def chains_for_run(
    config: ChainConfig,
    source: MarketDataSource,
    lake: LakeResource,
    universe: UniverseResource,
    sessions: list[dt.date],
    guard: Guard | None = None,
) -> tuple[tuple[str, ...], Written, pl.DataFrame]:
    """Fetch, enrich and write the option_chains partition of each session.

    Returns:
        The underlyings, the written partitions, and the last session's enriched chain.
    """
    underlyings = resolve_underlyings(config, universe.resolve(None))
    source.validate_symbols(underlyings)
    planned = {s: lineage.chains(underlyings, lineage.source_id(source)) for s in sessions}
    if guard is not None:
        guard("option_chains", planned)
    rates = partial(curve_rates, config.rate_curve)
    yields = {u: dividend_yield(config, u) for u in underlyings}
    written: Written = []
    chain = pl.DataFrame(schema=OPTION_CHAIN_SCHEMA)
    with lake.batch():  # one commit of the table for the step's partitions
        for session in sessions:
            raw = fetch_chains(source, underlyings, session)
            chain = enrich(raw, session, rates, yields, config.american_iv)
            written.append((session, lake.write("option_chains", session, chain, planned[session])))
    return underlyings, written, chain


def load_history(lake: LakeResource, first: dt.date, window: int) -> pl.DataFrame:
    """Per-underlying ``atm_iv_30d`` of the vol_surface partitions just before ``first``."""
    start = window_start(first, window)
    keys = [
        k
        for k in storage.existing_sessions(lake.root, "vol_surface")
        if start <= dt.date.fromisoformat(k) < first
    ]
    frames = [lake.frame("vol_surface", k, HISTORY_COLUMNS) for k in keys]
    empty = pl.DataFrame(schema={c: SURFACE_SCHEMA[c] for c in HISTORY_COLUMNS})
    return pl.concat([empty, *frames], how="vertical").unique(["underlying", "session"])


def _with_rank(
    rows: list[dict[str, Any]], history: pl.DataFrame, session: dt.date, config: SurfaceConfig
) -> list[dict[str, Any]]:
    if not rows:
        return rows
    underlying, current = rows[0]["underlying"], rows[0]["atm_iv_30d"]
    prior = rank_history(history, underlying, session, config.rank_window)
    rank, pct, status = iv_rank_percentile(current, prior, config.min_history)
    extra = {
        "iv_rank": rank,
        "iv_percentile": pct,
        "iv_history": prior.size,
        "iv_rank_status": status,
    }
    return [{**r, **extra} for r in rows]


def surfaces_for_run(
    config: SurfaceConfig, lake: LakeResource, sessions: list[dt.date], guard: Guard | None = None
) -> tuple[Written, pl.DataFrame]:
    """Fit and write the vol_surface partition of each session (ascending).

    Returns:
        The written partitions and the last session's surface.
    """
    planned = {}
    for s in sessions:  # a surface carries the underlyings of the chain it is fitted on
        chain_lineage = lineage.stored(lake.root, "option_chains", s) or {}
        planned[s] = lineage.surface(chain_lineage.get("underlyings", []))
    if guard is not None:
        guard("vol_surface", planned)
    history = load_history(lake, sessions[0], config.rank_window)
    written: Written = []
    surface = pl.DataFrame(schema=SURFACE_SCHEMA)
    with lake.batch():
        for session in sessions:
            chain = lake.read("option_chains", [session], OPTION_CHAIN_SCHEMA)
            rows: list[dict[str, Any]] = []
            for (_,), group in chain.group_by(["underlying"], maintain_order=True):
                fits = fit_underlying(group, config.min_quotes)
                rows += _with_rank(fits, history, session, config)
            surface = surface_frame(rows) if rows else pl.DataFrame(schema=SURFACE_SCHEMA)
            written.append((session, lake.write("vol_surface", session, surface, planned[session])))
            latest = surface.select(HISTORY_COLUMNS).unique(["underlying", "session"])
            history = pl.concat([history, latest], how="vertical")
    return written, surface
