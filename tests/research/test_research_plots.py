"""Research plots: the PNG labels a readable subset, the interactive HTML keeps everything."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from alpaca_improved_pipelines.backtesting import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_heatmap_labels_at_most_max_ticks_in_the_png_and_every_cell_in_the_html(
    tmp_path: Path,
) -> None:
    xs, ys = list(range(21, 250)), list(range(1, 100))  # a 10,000-point sweep's grid
    z = np.random.default_rng(0).normal(size=(len(ys), len(xs)))
    png, html = plots.heatmap(z, xs, ys, "slow", "fast", "Sharpe", tmp_path / "heatmap")
    assert png.read_bytes()[:8] == PNG_MAGIC
    text = html.read_text()
    assert all(f'"{x}"' in text for x in xs) and all(f'"{y}"' in text for y in ys)
    for labels in (xs, ys):
        positions, shown = plots._ticks(labels)
        assert 0 < len(shown) <= plots.MAX_TICKS
        assert shown == [str(labels[p]) for p in positions] and shown[0] == str(labels[0])
        assert max(np.diff(list(positions))) <= -(-len(labels) // plots.MAX_TICKS)


def test_a_small_grid_keeps_every_label() -> None:
    slow = list(range(20, 210, 10))  # ma_crossover's own grid: 19 x 10
    positions, shown = plots._ticks(slow)
    assert list(positions) == list(range(len(slow))) and shown == [str(s) for s in slow]


def test_equity_chart_keeps_every_session_in_the_html(tmp_path: Path) -> None:
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(300)]
    rets = np.random.default_rng(1).normal(0.0005, 0.01, len(days))
    png, html = plots.equity_and_drawdown(days, rets, "ma_crossover #1", tmp_path / "equity")
    assert png.read_bytes()[:8] == PNG_MAGIC
    text = html.read_text()
    assert all(f'"{d.isoformat()}"' in text for d in days)
