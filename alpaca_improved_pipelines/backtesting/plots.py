"""Research plots, each as a static PNG and an interactive HTML file (for MLflow artifacts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(
    z: np.ndarray, xs: list, ys: list, xlabel: str, ylabel: str, title: str, out: Path
) -> list[Path]:
    """Metric heatmap (rows ``ys``, columns ``xs``) as ``out``.png and ``out``.html."""
    import plotly.graph_objects as go

    plt = _mpl()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=90)
    im = ax.imshow(z, aspect="auto", origin="lower", cmap="RdYlGn")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs], fontsize=7, rotation=90)
    ax.set_yticks(range(len(ys)), [str(y) for y in ys], fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    png = out.with_suffix(".png")
    fig.savefig(png, bbox_inches="tight")
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
    plt = _mpl()
    fig, (a1, a2) = plt.subplots(
        2, 1, figsize=(7, 4.5), dpi=90, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    a1.plot(dates, equity, linewidth=1.0)
    a1.set_title(title)
    a1.set_ylabel("equity (x)")
    a2.fill_between(dates, dd, 0.0, color="tab:red", alpha=0.4)
    a2.set_ylabel("drawdown")
    fig.autofmt_xdate()
    png = out.with_suffix(".png")
    fig.savefig(png, bbox_inches="tight")
    plt.close(fig)
    html = out.with_suffix(".html")
    f = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25])
    f.add_trace(go.Scatter(x=dates, y=equity, name="equity"), row=1, col=1)
    f.add_trace(go.Scatter(x=dates, y=dd, name="drawdown", fill="tozeroy"), row=2, col=1)
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
