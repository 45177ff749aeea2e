"""Research plots, each as a static PNG and an interactive HTML file (for MLflow artifacts).

Rendering is most of the time a sweep spends logging to MLflow, so the PNGs skip what costs
without showing: a heatmap labels at most ``MAX_TICKS`` rows and columns (a 99 x 229 grid spent
0.8 s laying out 328 overlapping labels), and the equity chart, whose labels are known, uses
margins fixed before drawing instead of ``bbox_inches="tight"`` (which draws a figure twice).
Calendar dates reach both libraries as one ``datetime64`` array (each converts Python dates one
by one). The interactive HTML keeps every cell, label and point.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAX_TICKS = 25  # labels per heatmap axis in the PNG (the HTML labels every cell on hover)


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ticks(labels: list) -> tuple[range, list[str]]:
    """Positions and labels of at most ``MAX_TICKS`` evenly spaced ticks (first one included)."""
    step = -(-len(labels) // MAX_TICKS)  # ceil
    return range(0, len(labels), step), [str(x) for x in labels[::step]]


def _dates(dates: Sequence) -> Any:
    """Calendar dates as one ``datetime64[D]`` array, converted once for both libraries
    (anything else, e.g. timezone-aware timestamps, as given)."""
    if len(dates) and all(type(d) is dt.date for d in dates):
        return np.asarray(dates, dtype="datetime64[D]")
    return dates


def heatmap(
    z: np.ndarray, xs: list, ys: list, xlabel: str, ylabel: str, title: str, out: Path
) -> list[Path]:
    """Metric heatmap (rows ``ys``, columns ``xs``) as ``out``.png and ``out``.html."""
    import plotly.graph_objects as go

    plt = _mpl()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=90)
    im = ax.imshow(z, aspect="auto", origin="lower", cmap="RdYlGn")
    ax.set_xticks(*_ticks(xs), fontsize=7, rotation=90)
    ax.set_yticks(*_ticks(ys), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    png = out.with_suffix(".png")
    fig.savefig(png, bbox_inches="tight")  # labels of any length (asset names, percentages)
    plt.close(fig)
    html = out.with_suffix(".html")
    go.Figure(
        go.Heatmap(z=z, x=[str(x) for x in xs], y=[str(y) for y in ys], colorscale="RdYlGn")
    ).update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel).write_html(
        html, include_plotlyjs=True, full_html=True
    )
    return [png, html]


def equity_and_drawdown(dates: list, returns: np.ndarray, title: str, out: Path) -> list[Path]:
    """Equity curve and underwater (drawdown) chart as PNG and HTML."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    equity = np.cumprod(1.0 + returns)
    dd = equity / np.maximum.accumulate(equity) - 1.0
    xs = _dates(dates)
    plt = _mpl()
    fig, (a1, a2) = plt.subplots(
        2,
        1,
        figsize=(7, 4.5),
        dpi=90,
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    fig.subplots_adjust(left=0.12, right=0.97, top=0.93, hspace=0.15)  # known labels: no tight pass
    a1.plot(xs, equity, linewidth=1.0)
    a1.set_title(title)
    a1.set_ylabel("equity (x)")
    a2.fill_between(xs, dd, 0.0, color="tab:red", alpha=0.4)
    a2.set_ylabel("drawdown")
    fig.autofmt_xdate(bottom=0.14)
    png = out.with_suffix(".png")
    fig.savefig(png)
    plt.close(fig)
    html = out.with_suffix(".html")
    f = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25])
    f.add_trace(go.Scatter(x=xs, y=equity, name="equity"), row=1, col=1)
    f.add_trace(go.Scatter(x=xs, y=dd, name="drawdown", fill="tozeroy"), row=2, col=1)
    f.update_layout(title=title).write_html(html, include_plotlyjs=True, full_html=True)
    return [png, html]


def attribution(dates: list, parts: dict[str, np.ndarray], title: str, out: Path) -> list[Path]:
    """Cumulative P&L by component (delta, gamma, theta, vega, residual, …) as PNG and HTML."""
    import plotly.graph_objects as go

    plt = _mpl()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=90)
    for name, values in parts.items():
        ax.plot(dates, np.cumsum(np.nan_to_num(values)), label=name, linewidth=1.0)
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_title(title)
    ax.set_ylabel("cumulative P&L ($)")
    ax.legend(fontsize=7, ncol=4)
    fig.autofmt_xdate()
    png = out.with_suffix(".png")
    fig.savefig(png, bbox_inches="tight")
    plt.close(fig)
    html = out.with_suffix(".html")
    f = go.Figure(
        [go.Scatter(x=dates, y=np.cumsum(np.nan_to_num(v)), name=k) for k, v in parts.items()]
    )
    f.update_layout(title=title, yaxis_title="cumulative P&L ($)").write_html(
        html, include_plotlyjs=True, full_html=True
    )
    return [png, html]
