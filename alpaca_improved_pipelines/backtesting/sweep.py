"""Parameter sweeps of equity signal strategies: chunked, parallel, resumable, deterministic.

vectorbt is the general simulation engine (equity curves, returns, trades); the compiled fast
path re-simulates every point and its total return and trade count must agree with vectorbt's
(the largest difference is recorded). Each finished chunk is checkpointed atomically under
``<home>/sweeps/<family>/<sweep key>/``; a sweep killed half-way resumes from its checkpoints,
so no point is evaluated or logged twice. The chunks run on this machine's processes or a
Dask cluster (``backtesting.engines``), with the same result either way.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from alpaca_improved_pipelines.backtesting.checkpoints import Checkpoints
from alpaca_improved_pipelines.backtesting.data import CloseMatrix
from alpaca_improved_pipelines.backtesting.engines import SweepEngine, open_engine
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.backtesting.significance import add_significance as add_significance
from alpaca_improved_pipelines.backtesting.values import value_paths
from contracts import parquet_io

# Points per chunk (one vectorbt simulation, one checkpoint, the local pool's unit of work):
# CHUNK for a small sweep, doubled while the sweep keeps at least MIN_CHUNKS chunks (load
# balance over workers, little lost to a crash), up to MAX_CHUNK points and MAX_CHUNK_CELLS
# simulated cells (points x bars x symbols; the cap limits growth, CHUNK is the floor).
# Measured on 50k ma_crossover points: a worker evaluates 2,919 points per CPU-second in
# chunks of 512 against 2,089 in chunks of 32 (vectorbt's per-call cost), and the process that
# checkpoints writes and reads 16x fewer files. Rows and floats do not depend on the chunk size,
# except in a chunk of ONE point (numpy sums a single column pairwise, several column by column:
# the last bits of its metrics can differ); a sweep's chunk size is fixed by its own size.
CHUNK = 32
MAX_CHUNK = 512
MIN_CHUNKS = 64
MAX_CHUNK_CELLS = 1 << 22


@dataclass(frozen=True)
class SweepSpec:
    """What one sweep evaluates."""

    family: str
    points: list[dict[str, Any]]
    fees: float = 0.001
    slippage: float = 0.0005
    init_cash: float = 100_000.0
    search: str = "grid"
    seed: int | None = None
    verify: bool = True  # re-simulate every point on the compiled fast path and compare
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self, data_version: str) -> str:
        """Deterministic identity: same family, points, costs and data → same checkpoints."""
        blob = json.dumps(
            [self.family, self.points, self.fees, self.slippage, self.init_cash, data_version],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def metrics_matrix(rets: np.ndarray, periods: float = 252.0) -> dict[str, np.ndarray]:
    """Headline metrics of many variants at once (columns of ``rets``, no NaNs).

    Same conventions as ``strategies.analytics`` (empyrical's: ddof 1, 252 periods, wealth
    from 1 with the start as a peak); ``tests/research`` checks equality column by column.
    The moments use products, not ``**3``/``**4``: numpy's ``power`` was 90% of the time here
    (a SIMD kernel chosen by CPU, so not even the same bits on every machine), a product is one
    IEEE rounding per step everywhere. ``std`` is numpy's own formula (mean, centred squares,
    sum), written out once for both the sample and the population deviation.
    """
    n = rets.shape[0]
    mean = rets.mean(axis=0)
    centered = rets - mean
    sq = centered * centered
    ss = sq.sum(axis=0)
    sd = np.sqrt(ss / (n - 1))
    sd = np.where(rets.max(axis=0) == rets.min(axis=0), 0.0, sd)  # constant: exactly 0
    pop_sd = np.sqrt(ss / n)
    downside = np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2, axis=0)) * np.sqrt(periods)
    wealth = np.vstack([np.ones(rets.shape[1]), np.cumprod(1.0 + rets, axis=0)])
    total = wealth[-1] - 1.0
    peak = np.maximum.accumulate(wealth, axis=0)
    max_dd = np.min((wealth - peak) / peak, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        annual = (1.0 + total) ** (periods / n) - 1.0
        calmar = np.where(max_dd < 0, annual / np.abs(max_dd), np.nan)
        return {
            "sharpe_ratio": mean / sd * np.sqrt(periods),
            "sortino_ratio": mean * periods / downside,
            "annual_return": annual,
            "annual_volatility": sd * np.sqrt(periods),
            "max_drawdown": max_dd,
            "calmar_ratio": np.where(np.isinf(calmar), np.nan, calmar),
            "total_return": total,
            "skew": np.mean(sq * centered, axis=0) / pop_sd**3,
            "kurtosis": np.mean(sq * sq, axis=0) / pop_sd**4,  # raw kurtosis
        }


def _signals(spec: SweepSpec, point: dict[str, Any], data: CloseMatrix) -> tuple:
    fam = family(spec.family)
    lookback = fam.lookback(point)
    if lookback >= len(data.sessions):
        raise ValueError(f"lookback {lookback} bars >= {len(data.sessions)} sessions")
    return fam.signals(point, data.symbols, data.signal_input)


def _evaluate(
    spec: SweepSpec, points: list[dict[str, Any]], sigs: list[tuple], data: CloseMatrix
) -> pl.DataFrame:
    """One vectorbt simulation for all ``points`` (columns = points x symbols); one row each.

    Everything after the simulation works on whole (bars x columns) arrays: the value path
    from the order records (:func:`values.value_paths`, vectorbt's ``value()`` bit for bit),
    every metric across columns at once, and the frame built column by column.
    """
    import vectorbt as vbt

    n_sym, n_pts = len(data.symbols), len(points)
    close = np.tile(data.close, (1, n_pts))
    pf = vbt.Portfolio.from_signals(
        close,
        np.hstack([e for e, _ in sigs]),
        np.hstack([x for _, x in sigs]),
        fees=spec.fees,
        slippage=spec.slippage,
        freq="1D",
        init_cash=spec.init_cash / n_sym,
    )
    value, invested = value_paths(pf, close, spec.init_cash / n_sym)
    total = (value[-1] / (spec.init_cash / n_sym) - 1.0).reshape(n_pts, n_sym)
    trades = np.asarray(pf.trades.count(), dtype=np.int64).reshape(n_pts, n_sym)
    # each variant's portfolio: equal capital per symbol, values summed across its columns
    values = value.reshape(value.shape[0], n_pts, n_sym).sum(axis=2)[data.session_rows]
    prev = np.vstack([np.full(n_pts, spec.init_cash), values[:-1]])
    rets_all = values / prev - 1.0
    returns = pl.Series("returns", np.ascontiguousarray(rets_all.T)).cast(pl.List(pl.Float64))
    frame = pl.DataFrame(
        {
            "params": [json.dumps(point, sort_keys=True) for point in points],
            **metrics_matrix(rets_all),
            "trades": trades.sum(axis=1),
            "exposure": invested.reshape(-1, n_pts, n_sym).any(axis=2).mean(axis=0),
            "returns": returns,
            "error": pl.Series([None] * n_pts, dtype=pl.Null),
        }
    )
    if not spec.verify:
        return frame
    # (points, symbols) arrays, symbols in data.symbols' column order
    fast_ret, fast_trades = family(spec.family).fast_path(
        data.signal_input,
        points,
        fees=spec.fees,
        slippage=spec.slippage,
        init_cash=spec.init_cash / n_sym,
        threads=1,
    )
    return frame.with_columns(
        fastpath_abs_diff=np.max(np.abs(fast_ret - total), axis=1),
        fastpath_trades_equal=(fast_trades == trades).all(axis=1),
    )


def variant_trades(spec: SweepSpec, point: dict[str, Any], data: CloseMatrix) -> pl.DataFrame:
    """The trades of one variant (vectorbt's trade records, one row per round trip)."""
    import vectorbt as vbt

    entries, exits = family(spec.family).signals(point, data.symbols, data.signal_input)
    n_sym = len(data.symbols)
    pf = vbt.Portfolio.from_signals(
        data.close,
        entries,
        exits,
        fees=spec.fees,
        slippage=spec.slippage,
        freq="1D",
        init_cash=spec.init_cash / n_sym,
    )
    rec = pf.trades.records
    if len(rec) == 0:
        return pl.DataFrame(schema={"symbol": pl.String, "entry_session": pl.Date})
    row_sessions = data.row_sessions
    minutes = {}
    if data.row_ts is not None:  # intraday round trips: the minute bar each leg filled on
        minutes = {
            f"{leg}_ts": pl.Series(data.row_ts[np.asarray(rec[f"{leg}_idx"])]).cast(
                pl.Datetime("ns", "UTC")
            )
            for leg in ("entry", "exit")
        }
    return pl.DataFrame(
        {
            "symbol": [data.symbols[c] for c in rec["col"]],
            "entry_session": [row_sessions[i] for i in rec["entry_idx"]],
            "exit_session": [row_sessions[i] for i in rec["exit_idx"]],
            **minutes,
            "size": rec["size"],
            "entry_price": rec["entry_price"],
            "exit_price": rec["exit_price"],
            "fees": rec["entry_fees"] + rec["exit_fees"],
            "pnl": rec["pnl"],
            "return": rec["return"],
            "open": rec["status"] == 0,
        }
    )


def evaluate_chunk(
    spec: SweepSpec, points: list[dict[str, Any]], data: CloseMatrix
) -> pl.DataFrame:
    """Evaluate ``points``; a point whose strategy raises becomes a failed-trial row."""
    good, sigs, rows = [], [], []
    for point in points:
        try:
            sigs.append(_signals(spec, point, data))
            good.append(point)
        except Exception as exc:  # a failing variant is a recorded failed trial, not a crash
            rows.append(
                {
                    "params": json.dumps(point, sort_keys=True),
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
    if not good:
        return pl.DataFrame(rows, infer_schema_length=None)
    frame = _evaluate(spec, good, sigs, data)
    if not rows:
        return frame
    return pl.concat([frame, pl.DataFrame(rows)], how="diagonal_relaxed")


def chunk_parquet(spec: SweepSpec, points: list[dict[str, Any]], data: CloseMatrix) -> bytes:
    """:func:`evaluate_chunk` as its checkpoint file's bytes, serialized where the chunk ran.

    The engines run this, not ``evaluate_chunk``: the Parquet encoding then happens on the
    workers in parallel and the process that checkpoints only writes bytes (measured: encoding
    cost the driver about as much CPU as a worker spends evaluating the chunk).
    """
    return parquet_io.serialize(evaluate_chunk(spec, points, data).to_arrow())[0].to_pybytes()


def chunk_size(n_points: int, cells_per_point: int = 1) -> int:
    """Points per chunk for a sweep of ``n_points`` over data of ``cells_per_point`` closes
    (bars x symbols): a power-of-two multiple of ``CHUNK``, fixed by the sweep's own size, so
    a resumed sweep finds the chunks its first run checkpointed."""
    size = CHUNK
    while (
        size * 2 <= MAX_CHUNK
        and n_points >= size * 2 * MIN_CHUNKS
        and size * 2 * cells_per_point <= MAX_CHUNK_CELLS
    ):
        size *= 2
    return size


def run_sweep(
    spec: SweepSpec,
    data: CloseMatrix,
    checkpoint_root: Path | Checkpoints,
    workers: int = 2,
    on_chunk: Callable[[int, int], None] | None = None,
    engine: SweepEngine | None = None,
) -> tuple[pl.DataFrame, int]:
    """Evaluate every point of ``spec`` (resuming from checkpoints); returns (results, resumed).

    ``resumed`` counts the chunks taken from an earlier, interrupted run of the same sweep.
    ``checkpoint_root`` is a directory, or :class:`Checkpoints` (e.g. in the lake's bucket).
    ``engine`` runs the chunks (default: the one ``ALPACA_IMPROVED_SWEEP_ENGINE`` names, this
    machine's ``workers`` processes unless set; see ``backtesting.engines``). Whatever it is, each
    chunk is checkpointed here once by index and the result is assembled in chunk order, so the
    rows, their order and the trial count do not depend on the engine.
    """
    size = chunk_size(len(spec.points), int(data.close.size))
    chunks = [spec.points[i : i + size] for i in range(0, len(spec.points), size)]
    base = (
        checkpoint_root
        if isinstance(checkpoint_root, Checkpoints)
        else Checkpoints(checkpoint_root)
    )
    ck = base.sized(size)
    todo = [i for i in range(len(chunks)) if not ck.exists(i)]
    resumed = len(chunks) - len(todo)
    frames: dict[int, pl.DataFrame] = {}  # decoded as they arrive, while the workers go on
    if todo:
        # an engine passed in stays open (its owner closes it); one opened here is closed here
        with nullcontext(engine) if engine else open_engine(workers) as eng:
            # each task carries its own points: the spec it ships without them (100k points
            # pickled into every one of 3,000 tasks was most of the driver's CPU)
            bare = replace(spec, points=[])
            for i, blob in eng.map_chunks(chunk_parquet, bare, data, {i: chunks[i] for i in todo}):
                frame = pl.read_parquet(io.BytesIO(blob))
                if frame.height != len(chunks[i]):  # one row per point, never two
                    raise RuntimeError(
                        f"sweep chunk {i} returned {frame.height} rows for {len(chunks[i])} points"
                    )
                ck.put(i, blob)
                frames[i] = frame
                if on_chunk:
                    on_chunk(i, len(chunks))
    ordered = [frames[i] if i in frames else ck.read(i) for i in range(len(chunks))]
    return pl.concat(ordered, how="diagonal_relaxed") if ordered else pl.DataFrame(), resumed
