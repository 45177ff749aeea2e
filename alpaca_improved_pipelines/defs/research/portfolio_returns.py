"""The daily returns the portfolio allocation works on: each candidate's and each deployment's.

- A signal family's candidate is its best variant (``backtest_runs`` rank 1, what the
  ``candidates`` asset gates): its per-session returns are that variant's row of
  ``sweep_results``, one per NYSE session from the run's start to its end.
- An options family's candidate is its latest ``options_backtest``: daily returns of the equity
  its MLflow run logged (``daily.parquet``).
- A deployment's returns are its ``live_pnl`` over its running equity (the manifest's capital
  plus the P&L before each session), named ``live:<deployment id>``.

Strategies are aligned on the sessions they all have (an inner join), so the correlation and
the allocation see the same days for every strategy.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd
import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.backtesting.reference import manifests
from alpaca_improved_pipelines.backtesting.research_tables import read_family
from alpaca_improved_pipelines.defs.monitoring.journal_io import live_returns
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.tracking.mlflow_store import Tracker
from contracts import paths
from research import lakehouse
from research.portfolio.correlation import MIN_SESSIONS

LIVE_PREFIX = "live:"


def _best_rows(home: Path) -> list[dict]:
    con = lakehouse.connect(home, warn=False)
    if "backtest_runs" not in con.views:
        return []
    cur = con.sql(
        'SELECT family, params, start, "end", mlflow_run_id, sweep_run_id, data_version '
        "FROM backtest_runs "
        'WHERE rank = 1 QUALIFY row_number() OVER (PARTITION BY family ORDER BY "end" DESC) = 1 '
        "ORDER BY family"
    )
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _sweep_series(home: Path, row: dict) -> pd.Series | None:
    results = read_family(paths.lake_dir(home), "sweep_results", row["family"])
    hit = results.filter((pl.col("params") == row["params"]) & pl.col("error").is_null())
    if hit.is_empty():
        return None
    values = list(hit["returns"][0])
    sessions = cal.sessions_between(_date(row["start"]), _date(row["end"]))
    if len(sessions) != len(values):
        return None  # not one return per session: not comparable day by day
    return pd.Series(values, index=sessions, name=row["family"], dtype=float)


def _options_series(tracker: Tracker, row: dict, tmp: str) -> pd.Series | None:
    run_id = row["mlflow_run_id"]
    if not run_id or "daily.parquet" not in {a.path for a in tracker.client.list_artifacts(run_id)}:
        return None
    daily = pl.read_parquet(tracker.client.download_artifacts(run_id, "daily.parquet", tmp))
    daily = daily.select(pl.col("session").cast(pl.Date), "equity").sort("session")
    equity = daily["equity"].to_numpy()
    index = daily["session"].to_list()[1:]
    return pd.Series(equity[1:] / equity[:-1] - 1.0, index=index, name=row["family"], dtype=float)


def _date(value: object) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def candidate_returns(home: Path, tracker: Tracker) -> list[pd.Series]:
    """One daily-return series per family with a best backtest (see the module docstring)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in _best_rows(home):
            if row["sweep_run_id"]:
                series = _sweep_series(home, row)
            else:
                series = _options_series(tracker, row, tmp)
            if series is not None and series.size:
                out.append(series)
    return out


def candidate_versions(home: Path) -> dict[str, str]:
    """``backtest_runs/<family>`` -> the data version its best backtest ran on."""
    return {f"backtest_runs/{r['family']}": str(r["data_version"]) for r in _best_rows(home)}


def deployment_returns(home: Path) -> list[pd.Series]:
    """One daily-return series per deployment in ``live_pnl`` (named ``live:<id>``)."""
    con = lakehouse.connect(home, warn=False)
    if "live_pnl" not in con.views:
        return []
    pnl = con.sql("SELECT deployment_id, session, pnl FROM live_pnl ORDER BY session").pl()
    capital = {dep: m.capital for dep, m in manifests(home).items()}
    out = []
    for (dep,), part in pnl.partition_by("deployment_id", as_dict=True).items():
        if dep not in capital:
            continue  # no manifest: no capital to turn P&L into returns
        rets = live_returns(part.with_columns(pl.col("session").cast(pl.Date)), capital[dep])
        out.append(pd.Series(rets["ret"].to_numpy(), index=rets["session"].to_list(),
                             name=f"{LIVE_PREFIX}{dep}", dtype=float))  # fmt: skip
    return out


def strategy_returns(
    home: Path, tracker: Tracker, include_deployments: bool, min_sessions: int = MIN_SESSIONS
) -> tuple[pd.DataFrame, list[str]]:
    """Sessions x strategies on the sessions every strategy has, and what was left out.

    Strategies join longest history first (candidates, then deployments). One that would
    leave fewer than ``min_sessions`` common sessions is left out (a young deployment or a
    short options backtest would otherwise cut everyone's history to its own); once the common
    span is already below ``min_sessions``, the floor is ``MIN_SESSIONS``. A strategy with
    constant returns (a variant that never traded) is left out too. Each is named in the notes.

    Raises:
        ConfigError: fewer than two strategies with returns (names the assets to materialize).
    """
    notes: list[str] = []
    ranked = sorted(candidate_returns(home, tracker), key=lambda r: (-len(r), str(r.name)))
    if include_deployments:
        ranked += sorted(deployment_returns(home), key=lambda r: (-len(r), str(r.name)))
    series: list[pd.Series] = []
    common: pd.Index | None = None
    for s in ranked:
        if not _varies(s, notes):
            continue
        shared = s.index if common is None else common.intersection(s.index)
        floor = MIN_SESSIONS if common is None or len(common) < min_sessions else min_sessions
        if len(shared) < floor:
            notes.append(f"{s.name}: would leave {len(shared)} common sessions (< {floor})")
            continue
        series.append(s)
        common = shared
    if len(series) < 2:
        raise ConfigError(
            f"{len(series)} strategies have daily returns; allocation needs at least 2: "
            "materialize the research sweeps (research_job) or options_backtest for more families"
            + (", or run deployments (live_results)" if include_deployments else "")
        )
    frame = pd.concat(series, axis=1, join="inner").sort_index()
    return frame.dropna(), notes


def _varies(series: pd.Series, notes: list[str]) -> bool:
    if series.nunique() > 1:
        return True
    notes.append(f"{series.name}: constant returns (never traded)")
    return False
