"""Risk plots (matplotlib, Agg): the stress heatmap, window P&L paths and the attribution bars.

Each builder returns a figure; :func:`markdown` inlines it as a base64 PNG for Dagster metadata
and :func:`save_png` writes it for an MLflow artifact.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def markdown(fig: Any, title: str) -> str:
    """``fig`` as a Markdown image (inline base64 PNG); the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    _pyplot().close(fig)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def save_png(fig: Any, path: Path) -> Path:
    """``fig`` written to ``path`` (PNG); the figure is closed."""
    fig.savefig(path, format="png", bbox_inches="tight")
    _pyplot().close(fig)
    return path


def heatmap(grid: Any, title: str) -> Any:
    """A :class:`strategies.stress.StressGrid` as a diverging heatmap centred on 0."""
    fig, ax = _pyplot().subplots(figsize=(7, 4.5), dpi=80)
    limit = float(np.abs(grid.pnl).max()) or 1.0
    im = ax.imshow(grid.pnl, aspect="auto", origin="lower", cmap="RdYlGn", vmin=-limit, vmax=limit)
    ax.set_xticks(range(grid.vol_points.size), [f"{v:+g}" for v in grid.vol_points], fontsize=7)
    ax.set_yticks(range(grid.spot_shocks.size), [f"{s:+.0%}" for s in grid.spot_shocks], fontsize=7)
    ax.set_xlabel("vol shock (points)")
    ax.set_ylabel("spot shock")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="P&L ($)")
    return fig


def window_paths(history: pl.DataFrame, title: str) -> Any:
    """Cumulative P&L by day since each window's start (``window, cumulative`` rows)."""
    fig, ax = _pyplot().subplots(figsize=(7, 3.5), dpi=80)
    for (name,), part in history.partition_by("window", as_dict=True, maintain_order=True).items():
        ax.plot(range(part.height), part["cumulative"].to_numpy(), marker=".", label=str(name))
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("sessions since the window's start")
    ax.set_ylabel("P&L ($)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return fig


def attribution_bars(greeks: dict[str, float], title: str) -> Any:
    """The Greek split's totals as horizontal bars."""
    fig, ax = _pyplot().subplots(figsize=(6, 3), dpi=80)
    names = list(greeks)
    values = [greeks[n] for n in names]
    ax.barh(names, values, color=["#2a9d8f" if v >= 0 else "#e76f51" for v in values])
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("P&L ($)")
    ax.set_title(title)
    return fig
