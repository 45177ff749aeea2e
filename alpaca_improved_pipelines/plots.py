"""Small PNG plots embedded in Dagster Markdown metadata (rendered inline by the UI)."""

from __future__ import annotations

import base64
import io

import polars as pl


def line_plot_markdown(frame: pl.DataFrame, x: str, y: str, title: str) -> str:
    """A Markdown image (base64 PNG) of ``y`` against ``x``; empty string for an empty frame."""
    if frame.is_empty():
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.4), dpi=80)
    ax.plot(frame[x].to_list(), frame[y].to_list(), linewidth=1.0)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"
