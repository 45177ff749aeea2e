"""P&L per deployment against its backtest, from what the lake already holds (read-only).

Three lake tables, read through the configured store (``contracts.lake_store``: local files or
the S3 bucket) under the reader rule of ``contracts.lake``:

* ``live_pnl`` (session partitions, written by the ``live_results`` asset): the deployment's
  daily P&L marked to the lake's closes; its running sum over the manifest's capital is the
  live equity curve.
* ``backtest_runs`` (family partitions): the research run the deployment was promoted from,
  found by the manifest's MLflow run id. Its annual return, compounded per session over the
  live sessions, is the backtest's pace the live curve is drawn against.
* ``live_replay`` (session partitions, the ``live_replay`` asset): the runner's replayed orders
  held against the backtest's orders (matched, live only, backtest only).

A deployment whose run is not in ``backtest_runs`` and has no replay rows shows ``no
backtest``: nothing here invents a reference. Parquet files are cached by their version tag
(size and mtime, or the S3 ETag), so a refresh reads only partitions that changed.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import polars as pl

from contracts import lake_store, paths
from contracts.lake_store import LakeStore

SESSIONS_PER_YEAR = 252
MAX_POINTS = 500  # the sparkline's newest sessions


class LakeReader:
    """Reads whole lake tables, re-reading only the partitions whose version tag changed."""

    def __init__(self, home: Path) -> None:
        self.home = home
        # table -> partition path -> (version tag, frame)
        self._cache: dict[str, dict[str, tuple[str, pl.DataFrame]]] = {}

    def store(self) -> LakeStore:
        return lake_store.from_env(paths.lake_dir(self.home))

    def _tagged(self, store: LakeStore, table: str) -> dict[str, tuple[Path, str]]:
        files = store.scan(table).files
        if store.remote:
            listing = store.listing(table)  # type: ignore[attr-defined]  # one LIST, not HEADs
            tags = {str(p): info.etag for p, info in ((Path(k), v) for k, v in listing.items())}
            return {v: (p, tags.get(str(p), "")) for v, p in files.items()}
        out = {}
        for value, path in files.items():
            info = store.head(path)
            if info is not None:
                out[value] = (path, info.etag)
        return out

    def table(self, table: str, only: set[str] | None = None) -> pl.DataFrame:
        """Every partition of ``table`` (or the partition values in ``only``), concatenated."""
        store = self.store()
        old, kept = self._cache.get(table, {}), {}
        for value, (path, tag) in self._tagged(store, table).items():
            if only is not None and value not in only:
                continue
            hit = old.get(str(path))
            if hit is None or hit[0] != tag:
                hit = (tag, pl.read_parquet(io.BytesIO(store.read(path))))
            kept[str(path)] = hit
        self._cache[table] = kept  # partitions gone from the lake leave the cache too
        frames = [frame for _, frame in kept.values()]
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def _num(value: Any) -> float | None:
    if value is None:
        return None
    x = float(value)
    return None if math.isnan(x) or math.isinf(x) else x


def _live(frame: pl.DataFrame, dep: str, capital: float) -> dict[str, Any] | None:
    if frame.is_empty() or "deployment_id" not in frame.columns:
        return None
    mine = frame.filter(pl.col("deployment_id") == dep).sort("session")
    if mine.is_empty():
        return None
    equity = mine.select(
        pl.col("session").cast(pl.String), (capital + pl.col("pnl").cum_sum()).alias("equity")
    )
    last = mine.row(-1, named=True)
    total = float(mine["pnl"].sum())
    return {
        "sessions": mine.height,
        "first": str(mine["session"][0]),
        "last": str(last["session"]),
        "total_pnl": total,
        "realized_pnl": _num(last.get("realized_pnl")),
        "unrealized_pnl": _num(last.get("unrealized_pnl")),
        "return": total / capital if capital else None,
        "equity": [[s, e] for s, e in equity.tail(MAX_POINTS).iter_rows()],
    }


def _backtest(runs: pl.DataFrame, run_id: str) -> dict[str, Any] | None:
    if not run_id or runs.is_empty() or "mlflow_run_id" not in runs.columns:
        return None
    row = runs.filter(pl.col("mlflow_run_id") == run_id)
    if row.is_empty():
        return None
    r = row.row(0, named=True)
    keys = ("total_return", "annual_return", "sharpe_ratio", "max_drawdown")
    return {
        "mlflow_run_id": run_id,
        **{k: _num(r.get(k)) for k in keys},
        "start": str(r.get("start") or ""),
        "end": str(r.get("end") or ""),
    }


def _pace(live: dict[str, Any] | None, bt: dict[str, Any] | None, capital: float) -> None:
    """Add the backtest's pace (its annual return compounded per session) beside live equity."""
    ar: float | None = bt["annual_return"] if bt is not None else None
    if live is None or ar is None or ar <= -1 or live["return"] is None:
        return
    growth = (1.0 + ar) ** (1.0 / SESSIONS_PER_YEAR)
    start = live["sessions"] - len(live["equity"])  # sessions cut off the sparkline
    live["backtest_pace"] = [
        [s, capital * growth ** (start + k + 1)] for k, (s, _) in enumerate(live["equity"])
    ]
    live["backtest_pace_return"] = growth ** live["sessions"] - 1.0
    live["vs_backtest"] = live["return"] - live["backtest_pace_return"]


def _replay(frame: pl.DataFrame, dep: str) -> dict[str, Any] | None:
    if frame.is_empty() or "deployment_id" not in frame.columns:
        return None
    mine = frame.filter(pl.col("deployment_id") == dep)
    if mine.is_empty():
        return None
    counts = dict(mine.group_by("match").len().iter_rows())
    bps = mine["price_diff_bps"].drop_nulls() if "price_diff_bps" in mine.columns else None
    return {
        **{m: int(counts.get(m, 0)) for m in ("both", "live_only", "backtest_only")},
        "first": str(mine["session"].min()),
        "last": str(mine["session"].max()),
        "price_diff_bps_mean": _num(bps.mean()) if bps is not None and len(bps) else None,
    }


def read_pnl(reader: LakeReader, deployments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per deployment: live P&L and equity, its backtest run and pace, its replay comparison."""
    pnl = reader.table("live_pnl")
    replay = reader.table("live_replay")
    families = {d["strategy"] for d in deployments}
    runs = reader.table("backtest_runs", only=families)
    out = []
    for dep in deployments:
        capital = dep["capital"] or 0.0
        live = _live(pnl, dep["id"], capital)
        bt = _backtest(runs, dep["mlflow_run_id"])
        _pace(live, bt, capital)
        rep = _replay(replay, dep["id"])
        note = "" if bt or rep else "no backtest"
        if live is None:
            note = "; ".join(filter(None, [note, "no live P&L in the lake yet (live_results)"]))
        out.append({"deployment_id": dep["id"], "capital": capital, "live": live,
                    "backtest": bt, "replay": rep, "note": note})  # fmt: skip
    return out
