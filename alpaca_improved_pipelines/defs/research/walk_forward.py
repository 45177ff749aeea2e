"""Walk-forward over a finished sweep: choose the best variant in each training window by
Sharpe, hold it through the next test window, and score the stitched out-of-sample returns.

Signals are causal, so a variant's returns over a test window equal what it would have earned
trading live through that window with the parameters chosen from data before it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl

from strategies import analytics


def walk_forward(results: pl.DataFrame, train: int, test: int, anchored: bool) -> dict[str, Any]:
    """Out-of-sample metrics and per-fold choices from a sweep's per-variant daily returns."""
    ok = results.filter(pl.col("error").is_null())
    if ok.is_empty():
        raise ValueError("the sweep has no successful variants to walk forward")
    matrix = np.array([np.asarray(r) for r in ok["returns"]])  # variants x sessions
    n_obs = matrix.shape[1]
    if n_obs < train + test:
        raise ValueError(f"{n_obs} sessions are fewer than train {train} + test {test}")
    make = analytics.anchored_splits if anchored else analytics.rolling_splits
    splits = make(n_obs, train, test)
    folds, oos = [], []
    for sp in splits:
        scores = [analytics.sharpe_ratio(row[sp.train_start : sp.train_stop]) for row in matrix]
        best = int(np.nanargmax(np.where(np.isfinite(scores), scores, -np.inf)))
        out = matrix[best, sp.test_start : sp.test_stop]
        oos.append(out)
        folds.append(
            {
                "fold": sp.fold,
                "train_start": sp.train_start,
                "train_stop": sp.train_stop,
                "test_start": sp.test_start,
                "test_stop": sp.test_stop,
                "params": ok["params"][best],
                "train_sharpe": float(scores[best]),
                "test_sharpe": float(analytics.sharpe_ratio(out)),
            }
        )
    stitched = np.concatenate(oos)
    full = analytics.summary(stitched)
    return {
        "folds": pl.DataFrame(folds),
        "oos_returns": stitched,
        "oos_sharpe": float(full["sharpe_ratio"]),
        "oos_metrics": {f"oos_{k}": float(v) for k, v in full.items()},
        "chosen": sorted(
            {json.dumps(json.loads(p), sort_keys=True) for p in (f["params"] for f in folds)}
        ),
    }
